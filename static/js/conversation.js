// Renders a Messages request and its answer: system prompt, turns, text, thinking,
// tool use and tool results, images; a streamed answer is put back together from
// its SSE events first.

import { h, copyButton } from './util.js';

const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

function textBlock(text) {
  return h('div', { class: 'block text' }, h('pre', { class: 'wrap' }, text));
}

/** One content block. */
export function block(b) {
  if (typeof b === 'string') return textBlock(b);
  if (!b || typeof b !== 'object') return textBlock(String(b));
  switch (b.type) {
    case 'text':
      return textBlock(b.text || '');
    case 'thinking':
      return h('details', { class: 'block thinking', open: true },
        h('summary', {}, 'Thinking'),
        h('pre', { class: 'wrap' }, b.thinking || ''),
        b.signature ? h('small', { class: 'muted' }, 'signed') : null);
    case 'redacted_thinking':
      return h('div', { class: 'block thinking' }, h('em', {}, 'Redacted thinking'));
    case 'tool_use':
    case 'server_tool_use':
      return h('div', { class: 'block tool-use' },
        h('div', { class: 'block-head' }, h('span', { class: 'tag' }, 'Tool use'), ' ', h('code', {}, b.name || '?'), ' ', h('small', { class: 'muted' }, b.id || '')),
        h('pre', {}, pretty(b.input ?? {})));
    case 'tool_result':
    case 'web_search_tool_result': {
      const content = Array.isArray(b.content) ? b.content.map(block) : textBlock(pretty(b.content ?? ''));
      return h('div', { class: `block tool-result${b.is_error ? ' is-error' : ''}` },
        h('div', { class: 'block-head' }, h('span', { class: 'tag' }, b.is_error ? 'Tool error' : 'Tool result'), ' ', h('small', { class: 'muted' }, b.tool_use_id || '')),
        content);
    }
    case 'image':
      return h('div', { class: 'block' }, h('em', {}, `Image (${(b.source && b.source.media_type) || 'unknown type'})`));
    case 'document':
      return h('div', { class: 'block' }, h('em', {}, `Document${b.title ? `: ${b.title}` : ''}`));
    default:
      return h('div', { class: 'block' }, h('div', { class: 'block-head' }, h('span', { class: 'tag' }, b.type || 'block')), h('pre', {}, pretty(b)));
  }
}

function turn(role, content, extra) {
  const blocks = Array.isArray(content) ? content : [content];
  return h('article', { class: `turn ${role}`, 'aria-label': `${role} message` },
    h('div', { class: 'turn-head' }, h('span', { class: 'role' }, role), extra || null),
    blocks.map(block));
}

/** The conversation of a request body. */
export function conversation(body) {
  if (!body || typeof body !== 'object' || !Array.isArray(body.messages)) {
    if (body === null || body === undefined) return h('p', { class: 'muted' }, 'No request body was stored.');
    return h('pre', {}, pretty(body));
  }
  const parts = [];
  if (body.system) parts.push(turn('system', typeof body.system === 'string' ? [{ type: 'text', text: body.system }] : body.system));
  if (Array.isArray(body.tools) && body.tools.length) {
    parts.push(h('details', { class: 'tools' }, h('summary', {}, `${body.tools.length} tool${body.tools.length > 1 ? 's' : ''} offered: ${body.tools.map((t) => t.name).join(', ')}`),
      h('pre', {}, pretty(body.tools))));
  }
  for (const m of body.messages) parts.push(turn(m.role || 'user', m.content));
  return h('div', { class: 'conversation' }, parts);
}

/** Puts a streamed answer (a list of {event, data}) back together as one message. */
export function assemble(events) {
  const msg = { content: [], usage: {} };
  let error = null;
  for (const { data } of events) {
    if (!data || typeof data !== 'object') continue;
    switch (data.type) {
      case 'message_start':
        Object.assign(msg, data.message, { content: [] });
        msg.usage = { ...(data.message && data.message.usage) };
        break;
      case 'content_block_start':
        msg.content[data.index] = { ...data.content_block };
        break;
      case 'content_block_delta': {
        const b = msg.content[data.index] || (msg.content[data.index] = { type: 'text', text: '' });
        const d = data.delta || {};
        if (d.type === 'text_delta') b.text = (b.text || '') + d.text;
        else if (d.type === 'thinking_delta') b.thinking = (b.thinking || '') + d.thinking;
        else if (d.type === 'signature_delta') b.signature = (b.signature || '') + d.signature;
        else if (d.type === 'input_json_delta') b.partial_json = (b.partial_json || '') + d.partial_json;
        break;
      }
      case 'content_block_stop': {
        const b = msg.content[data.index];
        if (b && b.partial_json !== undefined) {
          try {
            b.input = JSON.parse(b.partial_json || '{}');
          } catch {
            b.input = b.partial_json;
          }
          delete b.partial_json;
        }
        break;
      }
      case 'message_delta':
        Object.assign(msg, data.delta || {});
        Object.assign(msg.usage, data.usage || {});
        break;
      case 'error':
        error = data.error;
        break;
      default:
    }
  }
  msg.content = msg.content.filter(Boolean);
  if (error) msg.error = error;
  return msg;
}

/** The answer: a message (JSON or assembled from SSE), an error, or raw text. */
export function response(body) {
  if (body === null || body === undefined) return h('p', { class: 'muted' }, 'No response body was stored.');
  const msg = Array.isArray(body) ? assemble(body) : body;
  if (msg && msg.type === 'error' && msg.error) {
    return h('div', { class: 'block tool-result is-error' }, h('strong', {}, msg.error.type), ': ', msg.error.message);
  }
  if (!msg || !Array.isArray(msg.content)) return h('pre', {}, pretty(body));
  const meta = [msg.model, msg.stop_reason && `stopped: ${msg.stop_reason}`].filter(Boolean).join(' · ');
  return h('div', { class: 'conversation' },
    turn('assistant', msg.content, h('small', { class: 'muted' }, meta)),
    msg.error ? h('div', { class: 'block tool-result is-error' }, h('strong', {}, 'Error in stream: '), `${msg.error.type}: ${msg.error.message}`) : null);
}

/** A header map as a table. */
export function headers(map) {
  if (!map || typeof map !== 'object') return h('p', { class: 'muted' }, 'None stored.');
  const rows = Object.entries(map);
  return h('table', { class: 'table kv-table' },
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, h('code', {}, Array.isArray(v) ? v.join(', ') : String(v)))))));
}

/** A <pre> with a copy button. */
export function codeBlock(label, value) {
  const text = pretty(value);
  return h('div', { class: 'code' }, h('div', { class: 'code-head' }, h('span', {}, label), copyButton(text, `Copy ${label.toLowerCase()}`)), h('pre', {}, text));
}
