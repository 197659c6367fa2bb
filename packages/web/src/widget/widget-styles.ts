/**
 * The widget's CSS. It lives in the shadow root only: `:host { all: initial }` stops the page's
 * inherited styles, and the custom properties are declared on `:host`, so nothing leaks either way.
 */
export const WIDGET_CSS = `
:host { all: initial; --gh-accent: #1d4ed8; --gh-fg: #111827; --gh-muted: #4b5563; --gh-bg: #ffffff; }
* { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif; }
.gh-root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font-size: 14px; color: var(--gh-fg); line-height: 1.4; }
.gh-bubble { width: 56px; height: 56px; border-radius: 50%; border: none; background: var(--gh-accent); color: #fff; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); display: flex; align-items: center; justify-content: center; margin-left: auto; }
.gh-bubble:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible, .gh-log:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.gh-panel { width: 340px; max-width: calc(100vw - 40px); height: 480px; max-height: calc(100vh - 100px); background: var(--gh-bg); border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; margin-bottom: 12px; }
.gh-head { display: flex; align-items: center; justify-content: space-between; padding: 10px 14px; background: var(--gh-accent); color: #fff; }
.gh-title { font-size: 16px; margin: 0; font-weight: 600; }
.gh-x { background: none; border: none; color: #fff; font-size: 22px; cursor: pointer; line-height: 1; padding: 2px 6px; }
.gh-status { display: flex; gap: 6px; align-items: center; padding: 4px 14px; font-size: 12px; color: var(--gh-muted); border-bottom: 1px solid #e5e7eb; }
.gh-dot { width: 8px; height: 8px; border-radius: 50%; background: #9ca3af; }
.gh-status-connected .gh-dot { background: #15803d; }
.gh-status-reconnecting .gh-dot, .gh-status-connecting .gh-dot { background: #b45309; }
.gh-status-disconnected .gh-dot { background: #b91c1c; }
.gh-retry, .gh-link { background: none; border: 1px solid var(--gh-accent); color: var(--gh-accent); border-radius: 4px; cursor: pointer; font-size: 12px; padding: 1px 8px; }
.gh-log { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 10px 14px; display: flex; flex-direction: column; gap: 8px; }
.gh-msg { max-width: 85%; padding: 6px 10px; border-radius: 10px; background: #f3f4f6; display: flex; flex-direction: column; }
.gh-mine { align-self: flex-end; background: #dbeafe; }
.gh-from { font-size: 11px; color: var(--gh-muted); font-weight: 600; }
.gh-text { white-space: pre-wrap; word-break: break-word; }
.gh-mark { font-size: 11px; color: var(--gh-muted); align-self: flex-end; }
.gh-failed { color: #b91c1c; }
.gh-notice { margin: 0; padding: 6px 14px; font-size: 13px; color: var(--gh-muted); background: #f9fafb; border-top: 1px solid #e5e7eb; }
.gh-compose { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e5e7eb; }
.gh-input { flex: 1; resize: none; border: 1px solid #9ca3af; border-radius: 6px; padding: 6px; font-size: 14px; color: var(--gh-fg); }
.gh-send, .gh-start { background: var(--gh-accent); color: #fff; border: none; border-radius: 6px; padding: 6px 14px; cursor: pointer; font-size: 14px; }
.gh-start[disabled] { opacity: .6; }
.gh-intro { padding: 14px; display: flex; flex-direction: column; gap: 6px; }
.gh-intro p { margin: 0 0 6px; }
.gh-intro input { border: 1px solid #9ca3af; border-radius: 6px; padding: 6px; font-size: 14px; }
.gh-intro label { font-size: 12px; color: var(--gh-muted); }
.gh-error { color: #b91c1c; }
.gh-sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
