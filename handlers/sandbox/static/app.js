// The sandbox page: the bot's chats in a browser. No framework and no build step.
// Everything shown is untrusted text: it is put in with textContent or text nodes only,
// and the few tags a message may have are built with createElement from a whitelist.
"use strict";

const API = "/sandbox/api";
const TAGS = new Set(["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
  "a", "blockquote", "span"]);
const state = { chats: [], people: [], labels: {}, chat: null, messages: new Map(), unread: {},
  replyTo: null };
const $ = (id) => document.getElementById(id);

function label(key, fallback) { return state.labels[key] || fallback || key; }

async function post(path, body) {
  const response = await fetch(API + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Otklik-Sandbox": "1" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function build(parent, nodes) {
  for (const node of nodes || []) {
    if (typeof node === "string") { parent.appendChild(document.createTextNode(node)); continue; }
    if (!node || !TAGS.has(node.tag)) continue;
    const el = document.createElement(node.tag);
    if (node.tag === "a") {
      if (typeof node.href === "string" && /^https?:\/\//.test(node.href)) {
        el.href = node.href; el.target = "_blank"; el.rel = "noopener noreferrer";
      }
    }
    build(el, node.children);
    parent.appendChild(el);
  }
}

function plain(nodes) {
  let out = "";
  for (const node of nodes || []) out += typeof node === "string" ? node : plain(node.children);
  return out;
}

function messageText(message) {
  return message.from === "person" ? message.text : plain(message.body);
}

let toastTimer = null;
function toast(text, alert) {
  const box = $("toast");
  box.textContent = text;
  box.className = alert ? "alert" : "";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, alert ? 6000 : 2500);
}

function actor() { return $("actor").value; }

// --- chats ---------------------------------------------------------------------------

function renderChatList() {
  const nav = $("chats");
  nav.replaceChildren();
  for (const chat of state.chats) {
    const item = document.createElement("button");
    item.className = "chat-item" + (chat.id === state.chat ? " active" : "");
    item.dataset.chat = chat.id;
    const avatar = document.createElement("span");
    avatar.className = "avatar" + (chat.coordination ? " coord" : "");
    avatar.textContent = chat.name.slice(0, 1);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = chat.name;
    item.append(avatar, name);
    if (state.unread[chat.id]) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(state.unread[chat.id]);
      item.appendChild(badge);
    }
    item.addEventListener("click", () => openChat(chat.id));
    nav.appendChild(item);
  }
}

async function openChat(chatId) {
  const chat = state.chats.find((c) => c.id === chatId) || state.chats[0];
  state.chat = chat.id;
  state.unread[chat.id] = 0;
  if (location.hash !== "#" + chat.id) history.replaceState(null, "", "#" + chat.id);
  $("chat-name").textContent = chat.name;
  $("chat-sub").textContent = label("hint");
  const avatar = $("chat-avatar");
  avatar.textContent = chat.name.slice(0, 1);
  avatar.className = "avatar" + (chat.coordination ? " coord" : "");
  setReply(null);
  renderChatList();
  await reloadMessages();
}

async function reloadMessages() {
  const chat = state.chat;
  const response = await fetch(`${API}/chats/${encodeURIComponent(chat)}`);
  if (!response.ok || chat !== state.chat) return;
  const data = await response.json();
  state.messages = new Map(data.messages.map((m) => [m.id, m]));
  const list = $("messages");
  list.replaceChildren();
  for (const message of data.messages) list.appendChild(renderMessage(message));
  showEmpty();
  scrollDown();
}

function showEmpty() {
  const list = $("messages");
  const empty = list.querySelector(".empty");
  if (state.messages.size === 0 && !empty) {
    const note = document.createElement("div");
    note.className = "empty";
    note.textContent = label("empty");
    list.appendChild(note);
  } else if (state.messages.size > 0 && empty) {
    empty.remove();
  }
}

function scrollDown() { const list = $("messages"); list.scrollTop = list.scrollHeight; }

// --- messages ------------------------------------------------------------------------

function renderMessage(message) {
  const mine = message.from === "person";
  const wrap = document.createElement("div");
  wrap.className = "msg" + (mine ? " mine" : "") + (message.prompt ? " prompt" : "");
  wrap.dataset.id = message.id;
  wrap.dataset.kind = mine ? "person" : message.kind;
  if (message.case_id) wrap.dataset.case = String(message.case_id);
  if (state.replyTo === message.id) wrap.classList.add("selected");

  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const sender = document.createElement("div");
  sender.className = "sender";
  sender.textContent = mine ? message.person : label("bot", "Otklik");
  bubble.appendChild(sender);
  if (message.reply_to) {
    const quoted = state.messages.get(message.reply_to);
    const quote = document.createElement("div");
    quote.className = "quote";
    quote.textContent = quoted ? messageText(quoted).slice(0, 120) : "…";
    bubble.appendChild(quote);
  }
  if (message.drill) {
    const tag = document.createElement("span");
    tag.className = "drill-tag";
    tag.textContent = "DRILL";
    bubble.appendChild(tag);
  }
  if (message.image && /^data:image\/(png|jpeg|gif|webp);base64,/.test(message.image)) {
    const img = document.createElement("img");
    img.src = message.image;
    img.alt = "";
    bubble.appendChild(img);
  }
  const body = document.createElement("div");
  body.className = "body";
  if (mine) body.textContent = message.text; else build(body, message.body);
  bubble.appendChild(body);
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = message.edited ? label("edited") : "";
  bubble.appendChild(meta);
  bubble.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    setReply(state.replyTo === message.id ? null : message.id);
  });
  wrap.appendChild(bubble);

  if (!mine && message.buttons && message.buttons.length) {
    const keyboard = document.createElement("div");
    keyboard.className = "keyboard";
    for (const row of message.buttons) {
      const line = document.createElement("div");
      line.className = "krow";
      for (const button of row) {
        const el = document.createElement("button");
        el.type = "button";
        el.textContent = button.label;
        el.addEventListener("click", () => press(message.id, button.data, el));
        line.appendChild(el);
      }
      keyboard.appendChild(line);
    }
    wrap.appendChild(keyboard);
  }
  return wrap;
}

function applyEvent(event) {
  if (event.chat !== state.chat) {
    if (event.type === "post") {
      state.unread[event.chat] = (state.unread[event.chat] || 0) + 1;
      renderChatList();
    }
    return;
  }
  const list = $("messages");
  if (event.type === "delete") {
    state.messages.delete(event.id);
    const gone = list.querySelector(`[data-id="${CSS.escape(event.id)}"]`);
    if (gone) gone.remove();
    if (state.replyTo === event.id) setReply(null);
    showEmpty();
    return;
  }
  const message = event.message;
  state.messages.set(message.id, message);
  const old = list.querySelector(`[data-id="${CSS.escape(message.id)}"]`);
  const fresh = renderMessage(message);
  if (old) { old.replaceWith(fresh); } else {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.appendChild(fresh);
    if (atBottom || message.from === "person") scrollDown();
  }
  showEmpty();
  // A prompt asks the person who pressed for text: reply to it straight away.
  if (event.type === "post" && message.prompt) setReply(message.id);
}

function setReply(messageId) {
  state.replyTo = messageId;
  for (const el of document.querySelectorAll(".msg.selected")) el.classList.remove("selected");
  const box = $("replying");
  if (!messageId) { box.hidden = true; return; }
  const message = state.messages.get(messageId);
  const el = document.querySelector(`.msg[data-id="${CSS.escape(messageId)}"]`);
  if (el) el.classList.add("selected");
  $("replying-text").textContent = message ? messageText(message).slice(0, 100) : "";
  box.hidden = false;
  $("say-text").focus();
}

// --- acting --------------------------------------------------------------------------

async function press(messageId, data, el) {
  el.disabled = true;
  try {
    const answer = await post("/press", { chat: state.chat, message: messageId, as: actor(), data });
    if (answer.toast) toast(answer.toast, answer.alert);
  } catch (error) {
    toast(error.message, true);
  } finally {
    el.disabled = false;
  }
}

async function say(event) {
  event.preventDefault();
  const input = $("say-text");
  const text = input.value.trim();
  if (!text) return;
  try {
    await post("/say", { chat: state.chat, as: actor(), text, reply_to: state.replyTo });
    input.value = "";
    setReply(null);
  } catch (error) {
    toast(error.message, true);
  }
}

async function feed(text, source, author) {
  const result = $("feed-result");
  result.textContent = "…";
  try {
    const answer = await post("/feed", { text, source, author });
    result.replaceChildren();
    if (answer.case) {
      const chat = state.chats.find((c) => c.id === answer.department);
      const link = document.createElement("button");
      link.className = "link";
      link.textContent = `${label("case_opened")} #${answer.case} → ${chat ? chat.name : answer.department}`;
      link.addEventListener("click", () => openChat(answer.department));
      result.appendChild(link);
    } else {
      result.textContent = answer.duplicate ? label("duplicate") : `${label("no_case")}: ${answer.sentiment}`;
    }
  } catch (error) {
    result.textContent = error.message;
  }
}

// --- start ---------------------------------------------------------------------------

function listen() {
  const source = new EventSource(`${API}/events`);
  source.onopen = () => { $("live").className = "dot on"; $("live").title = label("live"); reloadMessages(); };
  source.onerror = () => { $("live").className = "dot"; $("live").title = label("offline"); };
  source.onmessage = (event) => { applyEvent(JSON.parse(event.data)); };
}

async function start() {
  const response = await fetch(`${API}/state`);
  const data = await response.json();
  Object.assign(state, { chats: data.chats, people: data.people, labels: data.labels || {} });
  document.documentElement.lang = data.locale;
  document.title = label("title", "Otklik");
  $("title").textContent = label("title", "Otklik");
  for (const el of document.querySelectorAll("[data-label]")) el.textContent = label(el.dataset.label, el.textContent);
  for (const el of document.querySelectorAll("[data-placeholder]")) el.placeholder = label(el.dataset.placeholder);

  const select = $("actor");
  for (const person of data.people) {
    const option = document.createElement("option");
    option.value = person.id;
    option.textContent = person.name;
    select.appendChild(option);
  }
  const saved = localStorage.getItem("otklik.sandbox.actor");
  if (saved && data.people.some((p) => p.id === saved)) select.value = saved;
  const showRoles = () => {
    const person = data.people.find((p) => p.id === select.value);
    $("actor-roles").textContent = person ? person.roles : "";
    localStorage.setItem("otklik.sandbox.actor", select.value);
  };
  select.addEventListener("change", showRoles);
  showRoles();

  for (const name of data.sources) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    $("feed-source").appendChild(option);
  }
  $("feed-send").addEventListener("click", () => {
    const text = $("feed-text").value.trim();
    if (text) feed(text, $("feed-source").value, $("feed-author").value.trim());
  });
  const samples = $("samples");
  for (const group of data.feeds) {
    const title = document.createElement("h2");
    title.textContent = group.title;
    samples.appendChild(title);
    for (const sample of group.samples) {
      const button = document.createElement("button");
      button.className = "sample";
      button.dataset.sample = sample.id;
      const head = document.createElement("b");
      head.textContent = sample.title;
      button.append(head, document.createTextNode(sample.text.slice(0, 110)));
      button.addEventListener("click", () => feed(sample.text, sample.source, sample.author));
      samples.appendChild(button);
    }
  }
  $("say-form").addEventListener("submit", say);
  $("replying-cancel").addEventListener("click", () => setReply(null));
  $("toast").addEventListener("click", () => { $("toast").hidden = true; });
  window.addEventListener("hashchange", () => openChat(location.hash.slice(1)));
  await openChat(location.hash.slice(1));
  listen();
}

start();
