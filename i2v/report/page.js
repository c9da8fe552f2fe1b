
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("i2v-data").textContent);
  const col = {};
  data.columns.forEach((name, i) => { col[name] = i; });
  const rows = data.rows;
  const pageSize = Math.max(1, data.pageSize | 0);
  const FAILURES_PAGE = 100;
  const $ = (id) => document.getElementById(id);
  const get = (row, name) => row[col[name]];
  const kindOf = (row) => get(row, "error_kind") || "";
  const number = (n) => Number(n).toLocaleString("en-US");

  // Filter state: "" means any. A kind filter of NONE matches rows without an error kind.
  const NONE = "\u0000none";
  const state = { status: "", kind: "", text: "", flagged: false, page: 0, failuresPage: 0 };
  let haystacks = null;  // lower-cased id + prompt + message per row, made on the first search

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function textMatches(index) {
    if (!state.text) return true;
    if (haystacks === null) {
      haystacks = rows.map((row) => [get(row, "row_index"), get(row, "id"), get(row, "prompt"),
        get(row, "error_kind"), get(row, "error_message")].filter((v) => v !== null).join("\n").toLowerCase());
    }
    return haystacks[index].includes(state.text);
  }

  function kindMatches(row) {
    if (!state.kind) return true;
    return state.kind === NONE ? kindOf(row) === "" : kindOf(row) === state.kind;
  }

  // One pass: the rows that match every filter, and the counts each select would give.
  function filter() {
    const shown = [];
    const failures = [];
    const byStatus = new Map();
    const byKind = new Map();
    let forStatus = 0;
    let forKind = 0;
    rows.forEach((row, index) => {
      if (state.flagged && !get(row, "mismatch")) return;
      if (!textMatches(index)) return;
      const status = get(row, "status");
      const statusOk = !state.status || status === state.status;
      const kindOk = kindMatches(row);
      if (kindOk) {
        byStatus.set(status, (byStatus.get(status) || 0) + 1);
        forStatus += 1;
        if (status === "failed") failures.push(row);
      }
      if (statusOk) {
        const kind = kindOf(row) || NONE;
        byKind.set(kind, (byKind.get(kind) || 0) + 1);
        forKind += 1;
      }
      if (statusOk && kindOk) shown.push(row);
    });
    return { shown, failures, byStatus, byKind, forStatus, forKind };
  }

  // The options of a select, each with its count; the chosen value survives.
  function fillSelect(select, chosen, anyLabel, values, counts, total, label) {
    select.replaceChildren();
    const any = el("option", null, `${anyLabel} (${number(total)})`);
    any.value = "";
    select.append(any);
    values.forEach((value) => {
      const option = el("option", null, `${label(value)} (${number(counts.get(value) || 0)})`);
      option.value = value;
      select.append(option);
    });
    select.value = chosen;
  }

  const STATUS_ORDER = ["completed", "failed", "skipped"];
  const statuses = [...new Set(rows.map((row) => get(row, "status")))].sort(
    (a, b) => ((STATUS_ORDER.indexOf(a) + 1) || 99) - ((STATUS_ORDER.indexOf(b) + 1) || 99) || (a < b ? -1 : 1));
  const kinds = [...new Set(rows.map((row) => kindOf(row) || NONE))].sort(
    (a, b) => (a === NONE) - (b === NONE) || (a < b ? -1 : 1));

  function facts(row) {
    const parts = [];
    const duration = get(row, "duration_s");
    if (duration !== null) parts.push(`${Number(duration).toFixed(1)} s`);
    const width = get(row, "width");
    const height = get(row, "height");
    if (width !== null && height !== null) parts.push(`${width}\u00d7${height}`);
    const credits = get(row, "credits_used");
    if (credits !== null) parts.push(`${number(credits)} credits`);
    const seconds = get(row, "generation_seconds");
    if (seconds !== null) parts.push(`made in ${Number(seconds).toFixed(0)} s`);
    if (get(row, "model")) parts.push(get(row, "model"));
    return parts.join(" \u00b7 ");
  }

  function play(media, row) {
    const video = document.createElement("video");
    video.controls = true;
    video.playsInline = true;
    video.preload = "auto";
    const thumb = get(row, "thumb");
    if (thumb) video.poster = thumb;
    video.src = get(row, "video");
    video.addEventListener("error", () => {
      media.replaceChildren(el("div", "none", "this video cannot be played here: use the link below"));
    });
    media.replaceChildren(video);
    const started = video.play();
    if (started) started.catch(() => { /* blocked or unsupported: the controls stay, so do the links */ });
  }

  function card(row) {
    const status = get(row, "status");
    const node = el("article", `card ${status}`);
    node.dataset.row = String(get(row, "row_index"));
    const media = el("div", "media");
    const video = get(row, "video");
    const thumb = get(row, "thumb");
    const name = get(row, "id") || `row ${get(row, "row_index")}`;
    if (video) {
      const button = el("button", "thumb");
      button.type = "button";
      button.title = `play ${name}`;
      button.setAttribute("aria-label", `play video of ${name}`);
      if (thumb) {
        const img = document.createElement("img");
        img.loading = "lazy";
        img.decoding = "async";
        img.alt = `thumbnail of ${name}`;
        img.src = thumb;
        img.addEventListener("error", () => { img.replaceWith(el("div", "none", "no thumbnail")); });
        button.append(img);
      } else {
        button.append(el("div", "none", "no thumbnail"));
      }
      button.addEventListener("click", () => play(media, row));
      media.append(button);
    } else {
      media.append(el("div", "none", status === "failed" ? "no video" : "no video link"));
    }
    node.append(media);

    const body = el("div", "body");
    const head = el("div", "line");
    head.append(el("span", `badge ${status}`, status));
    if (get(row, "error_kind")) head.append(el("span", "kind", get(row, "error_kind")));
    const mismatch = get(row, "mismatch");
    if (mismatch) {
      const flag = el("span", "flag", "\u2691 mismatch");
      flag.title = mismatch;
      head.append(flag);
    }
    body.append(head);
    const title = el("div", "line");
    title.append(el("span", "id", get(row, "id") || "(no id)"), el("span", "row", `row ${get(row, "row_index")}`));
    body.append(title);
    const prompt = el("p", "prompt", get(row, "prompt") || "");
    prompt.title = get(row, "prompt") || "";
    body.append(prompt);
    if (status === "failed" && get(row, "error_message")) body.append(el("p", "error", get(row, "error_message")));
    if (mismatch) body.append(el("p", "error mismatch", `mismatch: ${mismatch}`));
    const line = facts(row);
    if (line) body.append(el("p", "facts", line));
    if (video) {
      const link = el("a", null, "open video");
      link.href = video;
      link.target = "_blank";
      link.rel = "noopener";
      body.append(link);
    }
    node.append(body);
    return node;
  }

  function pager(nav, page, pages, go) {
    nav.replaceChildren();
    const button = (label, target, title) => {
      const b = el("button", null, label);
      b.type = "button";
      b.title = title;
      b.disabled = target < 0 || target >= pages || target === page;
      b.addEventListener("click", () => go(target));
      return b;
    };
    nav.append(button("\u00ab", 0, "first page"), button("\u2039", page - 1, "previous page"),
      el("span", "where", `page ${number(page + 1)} of ${number(Math.max(pages, 1))}`),
      button("\u203a", page + 1, "next page"), button("\u00bb", pages - 1, "last page"));
  }

  function render() {
    const found = filter();
    fillSelect($("f-status"), state.status, "any status", statuses, found.byStatus, found.forStatus, (s) => s);
    fillSelect($("f-kind"), state.kind, "any kind", kinds, found.byKind, found.forKind,
      (k) => (k === NONE ? "no error kind" : k));

    const total = found.shown.length;
    const pages = Math.ceil(total / pageSize);
    state.page = Math.min(state.page, Math.max(pages - 1, 0));
    const first = state.page * pageSize;
    const slice = found.shown.slice(first, first + pageSize);
    const count = $("count");
    count.dataset.matching = String(total);
    count.dataset.shown = String(slice.length);
    count.textContent = total === 0 ? `no rows match (of ${number(rows.length)})`
      : `${number(first + 1)}\u2013${number(first + slice.length)} of ${number(total)} matching rows`
        + (total === rows.length ? "" : ` (${number(rows.length)} in all)`);
    for (const nav of document.querySelectorAll("nav.cards-pager")) {
      pager(nav, state.page, pages, (page) => { state.page = page; render(); $("cards").scrollIntoView(); });
    }
    const grid = $("grid");
    grid.replaceChildren(...slice.map(card));
    if (slice.length === 0) grid.append(el("p", "empty", "No rows match these filters."));

    renderFailures(found.failures);
  }

  function renderFailures(failed) {
    const body = $("failures-body");
    const pages = Math.ceil(failed.length / FAILURES_PAGE);
    state.failuresPage = Math.min(state.failuresPage, Math.max(pages - 1, 0));
    const first = state.failuresPage * FAILURES_PAGE;
    const slice = failed.slice(first, first + FAILURES_PAGE);
    $("failures-count").textContent = number(failed.length);
    body.replaceChildren(...slice.map((row) => {
      const tr = el("tr");
      const retryable = get(row, "retryable");
      tr.append(el("td", null, get(row, "row_index")), el("td", null, get(row, "id") || ""),
        el("td", null, get(row, "error_kind") || ""),
        el("td", null, retryable === null ? "" : retryable ? "yes" : "no"),
        el("td", "message", get(row, "error_message") || ""));
      return tr;
    }));
    $("failures-table").hidden = failed.length === 0;
    $("failures-none").hidden = failed.length !== 0;
    pager($("failures-pager"), state.failuresPage, pages, (page) => { state.failuresPage = page; render(); });
  }

  // Failure kinds at the top: one click shows that kind's rows.
  const failedKinds = new Map();
  rows.forEach((row) => {
    const kind = kindOf(row) || NONE;
    if (get(row, "status") === "failed") failedKinds.set(kind, (failedKinds.get(kind) || 0) + 1);
  });
  const kindList = $("kinds");
  [...failedKinds.entries()].sort((a, b) => b[1] - a[1]).forEach(([kind, n]) => {
    const b = el("button");
    b.type = "button";
    b.append(el("span", null, `${kind === NONE ? "no error kind" : kind} `), el("b", null, number(n)));
    b.addEventListener("click", () => {
      state.status = "failed"; state.kind = kind; state.page = 0; state.failuresPage = 0;
      render();
      $("cards").scrollIntoView();
    });
    kindList.append(b);
  });

  const flagged = rows.filter((row) => get(row, "mismatch")).length;
  if (flagged) {
    $("f-flagged-wrap").hidden = false;
    $("f-flagged-count").textContent = number(flagged);
  }
  $("f-status").addEventListener("change", (e) => { state.status = e.target.value; state.page = 0; render(); });
  $("f-kind").addEventListener("change", (e) => {
    state.kind = e.target.value; state.page = 0; state.failuresPage = 0; render();
  });
  $("f-flagged").addEventListener("change", (e) => { state.flagged = e.target.checked; state.page = 0; render(); });
  let typing = 0;
  $("f-text").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.text = e.target.value.trim().toLowerCase(); state.page = 0; state.failuresPage = 0; render();
    }, 150);
  });
  // One video plays at a time.
  document.addEventListener("play", (e) => {
    for (const video of document.querySelectorAll("video")) if (video !== e.target) video.pause();
  }, true);
  $("app").hidden = false;
  render();
})();
