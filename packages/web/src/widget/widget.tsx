/**
 * `/widget.js`: one `<script src=".../widget.js" data-channel="web" async>` line puts a chat
 * bubble on any page. Everything renders inside a shadow root; the server it talks to is the
 * origin the script was loaded from.
 */
import { render } from 'preact';
import { pickLang, translator } from '../shared/messages.js';
import { CustomerAuth } from './customer-auth.js';
import { WidgetApp } from './widget-app.js';
import { WIDGET_CSS } from './widget-styles.js';

function mount(): void {
  const script =
    (document.currentScript as HTMLScriptElement | null) ??
    document.querySelector<HTMLScriptElement>('script[src*="widget.js"][data-channel]');
  const origin = new URL(script?.src ?? location.href).origin;
  const channel = script?.dataset.channel || 'web';
  const lang = pickLang(script?.dataset.lang);
  const host = document.createElement('div');
  host.setAttribute('data-gatehouse-widget', '');
  const shadow = host.attachShadow({ mode: 'open' });
  // A constructed sheet needs no inline <style> (a strict style-src allows it); older browsers get one.
  if (
    'adoptedStyleSheets' in shadow &&
    typeof CSSStyleSheet === 'function' &&
    'replaceSync' in CSSStyleSheet.prototype
  ) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(WIDGET_CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement('style');
    style.textContent = WIDGET_CSS;
    shadow.appendChild(style);
  }
  const container = document.createElement('div');
  container.lang = lang === 'zh' ? 'zh-CN' : 'en';
  shadow.appendChild(container);
  const start = () => {
    document.body.appendChild(host);
    const auth = new CustomerAuth(origin, `gatehouse.widget:${origin}:${channel}`);
    render(<WidgetApp origin={origin} channel={channel} auth={auth} t={translator(lang)} />, container);
  };
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
}

mount();
