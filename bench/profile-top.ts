/**
 * `node bench/dist/profile-top.js [--top N] FILE.cpuprofile…`
 *
 * Prints the functions with the most self time in V8 CPU profiles (as written by
 * `BENCH_PROFILE_DIR=… npm run bench`), summed over every file given: the table
 * docs/benchmarks.md's findings quote, before and after a change.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time per function (µs), keyed by "name (file:line)". */
function selfTimes(profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const times = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i] as number);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${basename(url)}:${lineNumber + 1}` : 'native';
    const key = `${functionName || '(anonymous)'} (${where})`;
    times.set(key, (times.get(key) ?? 0) + (deltas[i] ?? 0));
  }
  return times;
}

function main(argv: string[]): void {
  let top = 15;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--top') top = Number(argv[++i]);
    else files.push(argv[i] as string);
  }
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    console.error('usage: node bench/dist/profile-top.js [--top N] FILE.cpuprofile…');
    process.exit(2);
  }
  const total = new Map<string, number>();
  for (const file of files)
    for (const [key, us] of selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile))
      total.set(key, (total.get(key) ?? 0) + us);
  const sum = [...total.values()].reduce((a, b) => a + b, 0);
  console.log('| self % | function |');
  console.log('|---:|---|');
  for (const [key, us] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`| ${((100 * us) / sum).toFixed(1)} | \`${key}\` |`);
}

main(process.argv.slice(2));
