import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const docs = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replaceAll(' ', '-');

function anchors(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1] as string)));
}

/** Markdown links outside code blocks and code spans: `[text](target)`. */
function links(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '``');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
}

describe('the documentation stands alone', () => {
  it('README.md and docs/*.md link only to files and headings inside the repository', () => {
    const problems: string[] = [];
    for (const doc of docs) {
      const file = join(root, doc);
      for (const target of links(readFileSync(file, 'utf8'))) {
        if (/^https?:\/\//.test(target)) continue;
        if (/^[a-z]+:/i.test(target) || target.startsWith('/')) {
          problems.push(`${doc}: ${target} is not a relative link`);
          continue;
        }
        const [path = '', anchor] = target.split('#');
        const resolved = path ? resolve(dirname(file), decodeURIComponent(path)) : file;
        if (relative(root, resolved).startsWith('..')) problems.push(`${doc}: ${target} leaves the repository`);
        else if (!existsSync(resolved)) problems.push(`${doc}: ${target} does not exist`);
        else if (anchor && statSync(resolved).isFile() && !anchors(resolved).has(anchor))
          problems.push(`${doc}: ${target} names no heading of ${relative(root, resolved)}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('never sends readers to documents outside the repository, and has no "(Gatehouse)" markers', () => {
    for (const doc of docs) {
      const text = readFileSync(join(root, doc), 'utf8');
      assert.doesNotMatch(text, /shared\/(SPEC|DESIGN)\.md|\.\.\/shared/, doc);
      assert.doesNotMatch(text, /\(Gatehouse\)/, doc);
    }
  });

  it('the checks above can fail: a link out of the repository is caught', () => {
    assert.deepEqual(links('see [the spec](../shared/SPEC.md) and `[x](../y)`'), ['../shared/SPEC.md']);
    assert.ok(relative(root, resolve(root, '../shared/SPEC.md')).startsWith('..'));
    assert.equal(slug('What an `ack` survives'), 'what-an-ack-survives');
  });
});
