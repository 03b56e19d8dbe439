// The ERPGo console: draws the local Slack's state as Slack would, and acts in it as a person.
"use strict";

const ui = {
  me: localStorage.getItem("erpgo.me") || "U0YOU",
  channel: localStorage.getItem("erpgo.channel") || "C0OPS",
  place: "channel", // or "home"
  thread: null, // ts of the open thread
  state: null,
  modalKey: "",
  pending: null,
};
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ talking to the server

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: ui.me, channel: ui.channel, ...body }),
  });
  const answer = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
  if (!answer.ok) toast(answer.error || "something went wrong");
  return answer;
}

async function refresh() {
  const query = new URLSearchParams({ user: ui.me, channel: ui.channel });
  const response = await fetch(`/api/state?${query}`);
  if (!response.ok) return;
  ui.state = await response.json();
  draw();
}

function refreshSoon() {
  if (ui.pending) return;
  ui.pending = setTimeout(() => {
    ui.pending = null;
    refresh();
  }, 50);
}

function listen() {
  const stream = new EventSource("/api/events");
  stream.onopen = () => setLive(true);
  stream.onmessage = refreshSoon;
  stream.onerror = () => setLive(false);
}

function setLive(on) {
  $("live").textContent = on ? "● live" : "● reconnecting";
  $("live").classList.toggle("on", on);
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => (box.hidden = true), 6000);
}

// ------------------------------------------------------------------ building elements

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function html(tag, attrs, markup) {
  const node = el(tag, attrs);
  node.innerHTML = markup;
  return node;
}

// ------------------------------------------------------------------ Slack's mrkdwn

function escapeText(text) {
  // Slack's text arrives with &, < and > already escaped; escape what is left, keep its entities
  return text.replace(/&(?!(amp|lt|gt|quot|#\d+);)/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function mrkdwn(text) {
  const kept = [];
  const keep = (markup) => `\u0000${kept.push(markup) - 1}\u0000`;
  let out = String(text || "");
  out = out.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre>${escapeText(code.replace(/^\n/, ""))}</pre>`));
  out = out.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeText(code)}</code>`));
  out = out.replace(/<([^<>|]+)(?:\|([^<>]*))?>/g, (_, target, label) => keep(link(target, label)));
  out = escapeText(out);
  const edge = "(^|[\\s(>\\u0000])";
  const after = "(?=$|[\\s).,:;!?<\\u0000])";
  out = out.replace(new RegExp(`${edge}\\*([^*\\n]+)\\*${after}`, "g"), "$1<b>$2</b>");
  out = out.replace(new RegExp(`${edge}_([^_\\n]+)_${after}`, "g"), "$1<i>$2</i>");
  out = out.replace(new RegExp(`${edge}~([^~\\n]+)~${after}`, "g"), "$1<s>$2</s>");
  out = out.replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
  out = pictures(out);
  out = out.replace(/\n/g, "<br>");
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => kept[Number(i)]);
}

function pictures(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => ui.state?.emoji?.[name] ?? whole);
}

function link(target, label) {
  if (target.startsWith("@")) return `<span class="mention">@${escapeText(personName(target.slice(1)))}</span>`;
  if (target.startsWith("#")) return `<span class="mention">#${escapeText(label || target.slice(1))}</span>`;
  if (target.startsWith("!date")) return `<time>${escapeText(label || "")}</time>`;
  if (target.startsWith("!")) return `<span class="mention">${escapeText(label || `@${target.slice(1).split("^")[0]}`)}</span>`;
  const safe = /^(https?:|mailto:)/.test(target) ? target : "#";
  return `<a href="${escapeText(safe)}" target="_blank" rel="noopener">${pictures(escapeText(label || target))}</a>`;
}

function personName(id) {
  const person = (ui.state?.people || []).find((p) => p.id === id);
  return person ? person.name : id;
}

function textOf(obj) {
  if (!obj) return "";
  if (typeof obj === "string") return escapeText(obj);
  if (obj.type === "mrkdwn") return mrkdwn(obj.text);
  return obj.emoji === false ? escapeText(obj.text || "") : pictures(escapeText(obj.text || ""));
}

// ------------------------------------------------------------------ Block Kit

function drawBlocks(blocks, where) {
  return (blocks || []).map((block) => drawBlock(block, where));
}

function drawBlock(block, where) {
  const draw = BLOCKS[block.type] || ((b) => el("div", { class: "b-unknown" }, `[${b.type} block]`));
  const node = draw(block, where);
  node.classList.add("block");
  return node;
}

const BLOCKS = {
  header: (b) => html("h3", { class: "b-header" }, textOf(b.text)),
  divider: () => el("hr", { class: "b-divider" }),
  image: (b) =>
    el("figure", { class: "b-image" }, b.title ? html("figcaption", {}, textOf(b.title)) : null, el("img", { src: b.image_url, alt: b.alt_text || "" })),
  context: (b) =>
    el("div", { class: "b-context" }, (b.elements || []).map((e) => (e.type === "image" ? el("img", { src: e.image_url, alt: e.alt_text || "" }) : html("span", {}, textOf(e))))),
  section: (b, where) =>
    el(
      "div",
      { class: "b-section" },
      el(
        "div",
        { class: "b-section-body" },
        b.text ? html("div", { class: "b-text" }, textOf(b.text)) : null,
        b.fields ? el("div", { class: "b-fields" }, b.fields.map((f) => html("div", { class: "b-field" }, textOf(f)))) : null,
      ),
      b.accessory ? el("div", { class: "b-accessory" }, drawElement(b.accessory, b, where)) : null,
    ),
  actions: (b, where) => el("div", { class: "b-actions" }, (b.elements || []).map((e) => drawElement(e, b, where))),
  input: (b, where) => drawInput(b, where),
  rich_text: (b) => el("div", { class: "b-text" }, richText(b.elements)),
};

function richText(elements) {
  return (elements || []).map((e) => (e.elements ? richText(e.elements).join("") : e.text || e.url || "")).flat();
}

function drawElement(element, block, where) {
  switch (element.type) {
    case "button":
      return drawButton(element, block, where);
    case "image":
      return el("img", { class: "accessory-image", src: element.image_url, alt: element.alt_text || "" });
    case "static_select":
      return drawSelect(element, where);
    case "overflow":
      return drawOverflow(element, where);
    default:
      return el("span", { class: "b-unknown" }, `[${element.type}]`);
  }
}

function drawButton(button, block, where) {
  const node = el("button", { type: "button", class: `btn ${button.style || ""}`, "data-action-id": button.action_id }, textOf(button.text));
  if (/^https?:/.test(button.url || "")) node.addEventListener("click", () => window.open(button.url, "_blank", "noopener"));
  if (!where.message) {
    node.disabled = !button.url;
    return node;
  }
  node.addEventListener("click", () => confirmThen(button.confirm, () => act(where.message, button.action_id)));
  return node;
}

function options(element) {
  const groups = (element.option_groups || []).flatMap((g) => g.options || []);
  return [...(element.options || []), ...groups];
}

function drawSelect(menu, where) {
  const node = el("select", { class: "menu", "data-action-id": menu.action_id, disabled: !where.message },
    el("option", { value: "", disabled: true, selected: true }, menu.placeholder?.text || "Select an item"),
    options(menu).map((o) => el("option", { value: o.value }, o.text?.text || o.value)));
  node.addEventListener("change", () => confirmThen(menu.confirm, () => act(where.message, menu.action_id, node.value)));
  return node;
}

function drawOverflow(menu, where) {
  const list = el("ul", { class: "overflow-menu", hidden: true },
    options(menu).map((o) =>
      el("li", {}, el("button", { type: "button", onclick: () => { list.hidden = true; confirmThen(menu.confirm, () => act(where.message, menu.action_id, o.value)); } }, o.text?.text || o.value))));
  const toggle = el("button", { type: "button", class: "btn overflow", "aria-label": "More actions", "data-action-id": menu.action_id, disabled: !where.message, onclick: () => (list.hidden = !list.hidden) }, "⋯");
  return el("span", { class: "overflow-wrap" }, toggle, list);
}

function confirmThen(confirm, then) {
  if (!confirm) return then();
  const dialog = $("confirm");
  $("confirm-title").innerHTML = textOf(confirm.title) || "Are you sure?";
  $("confirm-text").innerHTML = textOf(confirm.text);
  $("confirm-ok").innerHTML = textOf(confirm.confirm) || "Yes";
  $("confirm-ok").className = `btn ${confirm.style || "primary"}`;
  $("confirm-deny").innerHTML = textOf(confirm.deny) || "Cancel";
  $("confirm-deny").className = "btn";
  dialog.onclose = () => dialog.returnValue === "ok" && then();
  dialog.returnValue = "";
  dialog.showModal();
}

function act(message, actionId, option) {
  return post("/api/action", { channel: message.channel, ts: message.ts, action_id: actionId, option });
}

// ------------------------------------------------------------------ modals

function drawInput(block, where) {
  const element = block.element || {};
  const value = where.values?.[element.action_id] ?? element.initial_value ?? "";
  const attrs = { name: element.action_id, "data-action-id": element.action_id, placeholder: element.placeholder?.text, id: `input-${block.block_id}` };
  const field = element.multiline ? el("textarea", attrs, value) : el("input", { ...attrs, value });
  const error = where.errors?.[block.block_id];
  return el(
    "div",
    { class: `b-input${error ? " has-error" : ""}` },
    el("label", { for: attrs.id }, block.label?.text || "", block.optional ? el("span", { class: "optional" }, " (optional)") : null),
    field,
    error ? el("div", { class: "field-error", role: "alert" }, error) : null,
    block.hint ? html("div", { class: "hint" }, textOf(block.hint)) : null,
  );
}

function typedValues(form) {
  const values = {};
  for (const field of form.querySelectorAll("[data-action-id]")) {
    if ("value" in field) values[field.dataset.actionId] = field.value;
  }
  return values;
}

function drawModal(view) {
  const backdrop = $("modal-backdrop");
  const form = $("modal");
  if (!view) {
    backdrop.hidden = true;
    ui.modalKey = "";
    return;
  }
  const key = `${view.id}|${view.hash}|${JSON.stringify(view.errors || {})}`;
  if (key === ui.modalKey) return; // keep what is being typed
  const typed = ui.modalKey.startsWith(`${view.id}|`) ? typedValues(form) : submittedValues(view);
  ui.modalKey = key;
  const where = { values: typed, errors: view.errors || {} };
  form.replaceChildren(
    el("header", {}, el("h2", {}, view.title?.text || ""), el("button", { type: "button", class: "close", "aria-label": "Close", onclick: () => closeModal(view) }, "✕")),
    el("div", { class: "modal-body" }, drawBlocks(view.blocks, where)),
    el("footer", {},
      el("button", { type: "button", class: "btn", onclick: () => closeModal(view) }, view.close?.text || "Cancel"),
      view.submit ? el("button", { type: "submit", class: "btn primary" }, view.submit.text) : null),
  );
  form.onsubmit = (event) => {
    event.preventDefault();
    post("/api/view/submit", { view_id: view.id, values: typedValues(form) });
  };
  backdrop.hidden = false;
  form.querySelector("input, textarea")?.focus();
}

function submittedValues(view) {
  const values = {};
  for (const block of Object.values(view.state?.values || {})) {
    for (const [actionId, item] of Object.entries(block)) values[actionId] = item?.value ?? "";
  }
  return values;
}

function closeModal(view) {
  post("/api/view/close", { view_id: view.id });
}

// ------------------------------------------------------------------ messages and files

function drawMessage(message, inThread) {
  const fromBot = message.is_ephemeral || message.user === ui.state.bot_user;
  const when = new Date(Number(message.ts) * 1000).toLocaleTimeString();
  const body = message.blocks?.length ? drawBlocks(message.blocks, { message }) : [html("div", { class: "b-text" }, mrkdwn(message.text))];
  const replies = message.replies?.length || 0;
  return el(
    "article",
    { class: `message${message.is_ephemeral ? " ephemeral" : ""}`, "data-ts": message.ts },
    el("div", { class: "meta" },
      el("b", {}, fromBot ? "ERPGo bot" : personName(message.user)), fromBot ? el("span", { class: "app" }, "APP") : null,
      el("time", {}, when), message.edited ? el("span", { class: "edited" }, "(edited)") : null,
      message.is_ephemeral ? el("span", { class: "only-you" }, "Only visible to you") : null),
    body,
    (message.files || []).map(drawFile),
    !inThread && replies ? el("button", { type: "button", class: "replies", onclick: () => openThread(message.ts) }, `${replies} ${replies === 1 ? "reply" : "replies"}`) : null,
  );
}

function drawFile(file) {
  const url = `/files/${encodeURIComponent(file.id)}`;
  const title = file.title || file.name;
  if ((file.mimetype || "").startsWith("image/")) {
    return el("figure", { class: "file image" }, el("figcaption", {}, title), el("a", { href: url, target: "_blank" }, el("img", { src: url, alt: title })));
  }
  const more = file.lines_more > 0 ? el("div", { class: "more" }, `${file.lines_more} more line${file.lines_more === 1 ? "" : "s"}`) : null;
  return el(
    "div",
    { class: "file text" },
    el("div", { class: "file-title" }, "📎 ", title, file.lines ? el("span", { class: "lines" }, ` ${file.lines} lines`) : null),
    file.preview ? el("pre", {}, file.preview) : null,
    more,
    el("div", { class: "file-links" }, el("a", { href: url, target: "_blank" }, "Open"), " · ", el("a", { href: `${url}?download=1`, download: file.name }, "Download")),
  );
}

// ------------------------------------------------------------------ the page

function draw() {
  const state = ui.state;
  drawPeople(state);
  drawChannels(state);
  if (ui.place === "home") {
    $("title").textContent = "🏠 Home";
    $("messages").replaceChildren(state.home ? el("div", { class: "home" }, drawBlocks(state.home.blocks, {})) : el("p", { class: "empty" }, "The bot has not published a Home tab for you yet."));
  } else {
    const channel = state.channels.find((c) => c.id === ui.channel);
    $("title").textContent = `# ${channel ? channel.name : ui.channel}`;
    const shown = state.messages.map((m) => drawMessage(m, false));
    $("messages").replaceChildren(...(shown.length ? shown : [el("p", { class: "empty" }, "No messages yet. Try /erpgo health below.")]));
    $("messages").scrollTop = $("messages").scrollHeight;
  }
  $("composer").hidden = ui.place === "home";
  drawThread(state);
  drawModal(state.modal);
}

function drawPeople(state) {
  const select = $("who");
  const wanted = state.people.map((p) => `${p.id}:${p.name}`).join(",");
  if (select.dataset.people !== wanted) {
    select.replaceChildren(...state.people.map((p) => el("option", { value: p.id }, `${p.name} (${p.id})`)));
    select.dataset.people = wanted;
  }
  select.value = ui.me;
}

function drawChannels(state) {
  $("channels").replaceChildren(
    ...state.channels.map((c) =>
      el("li", {}, el("button", { type: "button", class: `place${ui.place === "channel" && c.id === ui.channel ? " current" : ""}`, onclick: () => openChannel(c.id) }, `# ${c.name}`)),
    ),
  );
  $("home-tab").classList.toggle("current", ui.place === "home");
}

function drawThread(state) {
  const parent = ui.place === "channel" && ui.thread ? state.messages.find((m) => m.ts === ui.thread) : null;
  $("thread").hidden = !parent;
  if (!parent) return;
  const list = $("thread-messages");
  list.replaceChildren(drawMessage(parent, true), el("div", { class: "reply-count" }, `${parent.replies.length} replies`), ...parent.replies.map((r) => drawMessage(r, true)));
  list.scrollTop = list.scrollHeight;
}

function openChannel(id) {
  ui.place = "channel";
  ui.channel = id;
  ui.thread = null;
  localStorage.setItem("erpgo.channel", id);
  refresh();
}

function openThread(ts) {
  ui.thread = ts;
  draw();
}

async function openHome() {
  ui.place = "home";
  ui.thread = null;
  draw();
  await post("/api/home", {});
}

// ------------------------------------------------------------------ the composer

function matchingVerbs(text) {
  const typed = text.trim().toLowerCase();
  if (!typed.startsWith("/")) return [];
  return (ui.state?.verbs || []).filter((v) => v.name.startsWith(typed) || (typed.length > 6 && v.name.includes(typed.slice(7)))).slice(0, 8);
}

function suggest() {
  const list = $("suggestions");
  const text = $("compose").value;
  const verbs = matchingVerbs(text).filter((v) => v.name !== text.trim());
  list.hidden = !verbs.length;
  list.replaceChildren(
    ...verbs.map((v, i) =>
      el("li", { role: "option", class: i === 0 ? "first" : "", onmousedown: (e) => { e.preventDefault(); complete(v); } },
        el("b", {}, v.name), v.usage ? el("span", { class: "usage" }, ` ${v.usage}`) : null, el("span", { class: "summary" }, v.summary))),
  );
}

function complete(verb) {
  $("compose").value = `${verb.name} `;
  $("compose").focus();
  suggest();
}

async function send(event) {
  event.preventDefault();
  const text = $("compose").value.trim();
  if (!text) return;
  $("compose").value = "";
  suggest();
  await post("/api/command", { text });
}

function onComposeKey(event) {
  if (event.key !== "Tab") return;
  const first = matchingVerbs($("compose").value)[0];
  if (first) {
    event.preventDefault();
    complete(first);
  }
}

// ------------------------------------------------------------------ start

async function addPerson(event) {
  event.preventDefault();
  const [id, ...name] = $("person").value.trim().split(/\s+/);
  if (!id) return;
  const answer = await post("/api/people", { id, name: name.join(" ") });
  if (answer.ok) {
    $("person").value = "";
    switchTo(id.toUpperCase());
  }
}

function switchTo(user) {
  ui.me = user;
  localStorage.setItem("erpgo.me", user);
  ui.modalKey = "";
  if (ui.place === "home") openHome();
  else refresh();
}

window.addEventListener("DOMContentLoaded", () => {
  $("who").addEventListener("change", (e) => switchTo(e.target.value));
  $("add-person").addEventListener("submit", addPerson);
  $("home-tab").addEventListener("click", openHome);
  $("close-thread").addEventListener("click", () => openThread(null));
  $("composer").addEventListener("submit", send);
  $("compose").addEventListener("input", suggest);
  $("compose").addEventListener("keydown", onComposeKey);
  refresh().then(listen);
});
