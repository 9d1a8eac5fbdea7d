// The one DOM-building helper: elements from data, text always through textContent (never HTML), so nothing a
// server or a link sends can inject markup.

/**
 * h('p', {class: 'x', hidden: true, onclick: fn}, 'text', child) -> an element. `class` sets className, `on*`
 * functions become listeners, booleans set or skip the attribute, `null`/`undefined` are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const byId = (id) => document.getElementById(id);
