// Building the page safely. Everything shown comes from a run folder or a model, so it is untrusted:
// text goes in as text nodes (never parsed as HTML), attributes are set one by one from a short list,
// and the only URLs built are this server's own, from names checked against what beamsearch writes.

const SVG_NS = "http://www.w3.org/2000/svg";
const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const IMAGE_PATH = /^images\/[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(png|jpg|jpeg|webp)$/;
const ATTRIBUTES = new Set(["class", "href", "src", "alt", "title", "target", "rel", "type", "loading",
  "role", "aria-label", "hidden", "open"]);

// el("p", {class: "muted"}, "text", child, ...): strings and numbers become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("data-")) node.setAttribute(name, String(value));
    else if (ATTRIBUTES.has(name)) node.setAttribute(name, value === true ? "" : String(value));
    else throw new Error(`attribute ${name} is not allowed`);
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// SVG shapes take numbers and a few fixed words; text inside them is a text node too.
export function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = String(text);
  return node;
}

export function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function validRunName(name) {
  return typeof name === "string" && RUN_NAME.test(name) && !name.includes("..");
}

// The address of a run's page: "/runs/NAME/" for `run` "NAME", "/runs/BATCH/IDEA/" for "BATCH/IDEA" (an
// idea's run inside a batch folder); null for anything else. Each part is a checked folder name.
export function runBase(run) {
  const parts = typeof run === "string" ? run.split("/") : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every(validRunName)) return null;
  return `/runs/${parts.map(encodeURIComponent).join("/")}/`;
}

// The URL of an image that an event names ("images/i1c04.png"), or null for anything else.
export function imageUrl(run, path) {
  const base = runBase(run);
  if (!base || typeof path !== "string" || !IMAGE_PATH.test(path)) return null;
  return `${base}images/${encodeURIComponent(path.slice("images/".length))}`;
}

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function score(value, digits = 1) {
  return isNumber(value) ? value.toFixed(digits) : "–";
}

export function money(value) {
  if (!isNumber(value)) return "–";
  return value < 0.01 && value > 0 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

export function duration(seconds) {
  if (!isNumber(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function text(value) {
  return typeof value === "string" ? value : "";
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// follow(url, conn, handlers, onOpen): follow this server's event stream at `url`, its state shown in the
// `conn` element ("live", "reconnecting…", "disconnected"); `handlers` maps each SSE event name to its
// listener. The browser reconnects by itself, sending the last id, so nothing is shown twice.
export function follow(url, conn, handlers, onOpen = () => {}) {
  const source = new EventSource(url);
  source.addEventListener("open", () => {
    setText(conn, "live");
    conn.className = "conn live";
    onOpen();
  });
  source.addEventListener("error", () => {
    const closed = source.readyState === EventSource.CLOSED;
    setText(conn, closed ? "disconnected (reload to try again)" : "reconnecting…");
    conn.className = "conn lost";
  });
  for (const [kind, handler] of Object.entries(handlers)) source.addEventListener(kind, handler);
  return source;
}
