
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("i2v-data").textContent);
  const col = {};
  data.columns.forEach((name, i) => { col[name] = i; });
  const rows = data.rows;
  const pageSize = Math.max(1, data.pageSize | 0);
  const FAILURES_PAGE = 100;
  const CREDITS_PER_USD = 2000000;
  const $ = (id) => document.getElementById(id);
  const get = (row, name) => row[col[name]];
  const kindOf = (row) => get(row, "error_kind") || "";
  const runOf = (row) => get(row, "run") || "";
  const number = (n) => Number(n).toLocaleString("en-US");
  const dollars = (n) => (n === 0 ? "$0.00" : n > 0 && n < 0.005 ? "<$0.01"
    : `$${Number(n).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);

  // Filter state: "" means any. A kind filter of NONE matches rows without an error kind.
  const NONE = "\u0000none";
  const state = { status: "", kind: "", run: "", text: "", flagged: false, page: 0, failuresPage: 0 };
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
        get(row, "error_kind"), get(row, "error_message"), get(row, "run")]
        .filter((v) => v !== null).join("\n").toLowerCase());
    }
    return haystacks[index].includes(state.text);
  }

  function kindMatches(row) {
    if (!state.kind) return true;
    return state.kind === NONE ? kindOf(row) === "" : kindOf(row) === state.kind;
  }

  // One pass: the rows that match every filter, and the counts each select would give
  // (a select's counts follow the other filters, not its own).
  function filter() {
    const shown = [];
    const failures = [];
    const byStatus = new Map();
    const byKind = new Map();
    const byRun = new Map();
    let forStatus = 0;
    let forKind = 0;
    let forRun = 0;
    rows.forEach((row, index) => {
      if (state.flagged && !get(row, "mismatch")) return;
      if (!textMatches(index)) return;
      const status = get(row, "status");
      const run = runOf(row);
      const statusOk = !state.status || status === state.status;
      const kindOk = kindMatches(row);
      const runOk = !state.run || run === state.run;
      if (kindOk && runOk) {
        byStatus.set(status, (byStatus.get(status) || 0) + 1);
        forStatus += 1;
        if (status === "failed") failures.push(row);
      }
      if (statusOk && runOk) {
        const kind = kindOf(row) || NONE;
        byKind.set(kind, (byKind.get(kind) || 0) + 1);
        forKind += 1;
      }
      if (statusOk && kindOk) {
        byRun.set(run, (byRun.get(run) || 0) + 1);
        forRun += 1;
      }
      if (statusOk && kindOk && runOk) shown.push(row);
    });
    return { shown, failures, byStatus, byKind, byRun, forStatus, forKind, forRun };
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
  // Runs are named from when they started: the latest first.
  const runs = [...new Set(rows.map(runOf))].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  const manyRuns = runs.length > 1;

  function facts(row) {
    const parts = [];
    const duration = get(row, "duration_s");
    if (duration !== null) parts.push(`${Number(duration).toFixed(1)} s`);
    const width = get(row, "width");
    const height = get(row, "height");
    if (width !== null && height !== null) parts.push(`${width}\u00d7${height}`);
    const seconds = get(row, "generation_seconds");
    if (seconds !== null) parts.push(`made in ${Number(seconds).toFixed(0)} s`);
    if (get(row, "model")) parts.push(get(row, "model"));
    return parts.join(" \u00b7 ");
  }

  // What the row cost, in credits and USD, and beside it the price table's estimate: short
  // lines, each with its words in full as its title.
  function cost(row) {
    const credits = get(row, "credits_used");
    const usd = get(row, "usd");
    const estimate = get(row, "estimate");
    const lines = [];
    if (credits !== null || usd !== null) {
      const parts = [];
      if (credits !== null) parts.push(`${number(credits)} credits`);
      if (usd !== null) parts.push(dollars(usd));
      const earlier = get(row, "status") === "skipped";
      lines.push([(earlier ? "paid earlier: " : "") + parts.join(" \u00b7 "),
        `${earlier ? "paid by an earlier run" : "cost, as the API reported it"}: ${parts.join(", ")}`]);
    }
    if (estimate !== null) {
      const usdEstimate = dollars(estimate / CREDITS_PER_USD);
      lines.push([`est. ${number(estimate)} \u00b7 ${usdEstimate}`,
        `estimated by the price table: ${number(estimate)} credits, ${usdEstimate}`]);
    }
    return lines;
  }

  // The shape of a card's picture: the video's, else the aspect ratio the row asked for, else 16:9;
  // bounded so that a freak size cannot make a card a sliver.
  function askedRatio(row) {
    try {
      const params = JSON.parse(get(row, "params") || "{}");
      const match = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$/.exec(String(params.aspect_ratio || ""));
      if (match && Number(match[2]) > 0) return Number(match[1]) / Number(match[2]);
    } catch (e) { /* params that are not JSON ask for nothing */ }
    return null;
  }

  function ratioOf(row) {
    const width = Number(get(row, "width"));
    const height = Number(get(row, "height"));
    if (width > 0 && height > 0) return width / height;
    return askedRatio(row) || 16 / 9;
  }

  function shape(node, ratio) {
    node.style.setProperty("--ar", Math.min(3, Math.max(1 / 3, ratio)).toFixed(4));
  }

  // A picture that takes its own shape once loaded: the card then fits it without bands.
  function picture(node, src, alt, fits, fallback) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = alt;
    img.src = src;
    img.addEventListener("load", () => {
      if (fits && img.naturalWidth > 0 && img.naturalHeight > 0) shape(node, img.naturalWidth / img.naturalHeight);
    });
    img.addEventListener("error", () => { img.replaceWith(fallback()); });
    return img;
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
    if (get(row, "id")) node.dataset.id = get(row, "id");
    if (get(row, "run")) node.dataset.run = get(row, "run");
    const known = Number(get(row, "width")) > 0 && Number(get(row, "height")) > 0;
    shape(node, ratioOf(row));
    const media = el("div", "media");
    const video = get(row, "video");
    const thumb = get(row, "thumb");
    const image = get(row, "image");
    const name = get(row, "id") || `row ${get(row, "row_index")}`;
    const nothing = (text) => () => { media.classList.add("blank"); return el("div", "none", text); };
    if (video) {
      const button = el("button", "thumb");
      button.type = "button";
      button.title = `play ${name}`;
      button.setAttribute("aria-label", `play video of ${name}`);
      if (thumb) {
        button.append(picture(node, thumb, `thumbnail of ${name}`, !known, nothing("no thumbnail")));
      } else if (image) {
        button.append(picture(node, image, `input image of ${name}`, !known, nothing("no thumbnail")));
      } else {
        button.append(nothing("no thumbnail")());
      }
      button.addEventListener("click", () => play(media, row));
      media.append(button);
    } else if (image) {
      // No video: the picture it was to be made from, marked as such.
      media.classList.add("input");
      media.append(picture(node, image, `input image of ${name}`, true, nothing("no video; the input image cannot be shown")),
        el("span", "tag", status === "failed" ? "input image \u00b7 no video" : "input image"));
    } else {
      media.append(nothing(status === "failed" ? "no video" : "no video link")());
    }
    node.append(media);

    // Lines of one height whatever the card's width (the full text is in their title), so
    // that the cards of a row, narrow and wide, end level.
    const body = el("div", "body");
    const clipped = (className, text, title) => {
      const node = el("p", `clip ${className}`, text);
      node.title = title || text;
      return node;
    };
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
    const id = el("span", "id", get(row, "id") || "(no id)");
    id.title = get(row, "id") || "";
    title.append(id, el("span", "row", `row ${get(row, "row_index")}`));
    body.append(title);
    if (manyRuns && get(row, "run")) body.append(clipped("facts run", `run ${get(row, "run")}`));
    const prompt = el("p", "prompt", get(row, "prompt") || "");
    prompt.title = get(row, "prompt") || "";
    body.append(prompt);
    if (status === "failed" && get(row, "error_message")) {
      const error = el("p", "error message", get(row, "error_message"));
      error.title = get(row, "error_message");
      body.append(error);
    }
    if (mismatch) body.append(clipped("error mismatch", `mismatch: ${mismatch}`));
    const line = facts(row);
    if (line) body.append(clipped("facts", line));
    for (const [text, title] of cost(row)) body.append(clipped("facts cost", text, title));
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
    if (manyRuns) {
      fillSelect($("f-run"), state.run, "any run", runs, found.byRun, found.forRun, (r) => r || "(no run)");
    }

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
        el("td", "run-col", runOf(row)), el("td", null, get(row, "error_kind") || ""),
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
  if (manyRuns) $("f-run-wrap").hidden = false;
  $("app").classList.toggle("one-run", !manyRuns);
  $("f-run").addEventListener("change", (e) => {
    state.run = e.target.value; state.page = 0; state.failuresPage = 0; render();
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
