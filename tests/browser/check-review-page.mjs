// Opens a brief.html in Debian's headless Chromium (driven by playwright-core) with the
// network closed, takes screenshots (the full page, and the first screen as SCREENSHOT's
// name with .first-screen.png) and checks the page through its DOM against
// the run's brief.json. Prints one JSON line of findings; exits 1 when a check fails.
//
// Usage: node check-review-page.mjs PAGE BRIEF_JSON SCREENSHOT [INJECTED_TEXT...]
// INJECTED_TEXT: strings the articles hold (markup among them) that must show as text.
// PLAYWRIGHT_CORE names the installed playwright-core (scripts/test.sh installs it into
// target/browser-test); CHROMIUM the browser (default /usr/bin/chromium).
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [page_path, json_path, screenshot, ...injected] = process.argv.slice(2);
const require = createRequire(join(process.env.PLAYWRIGHT_CORE ?? ".", "package.json"));
const { chromium } = require("playwright-core");
const brief = JSON.parse(readFileSync(json_path, "utf8"));
const page_url = pathToFileURL(page_path).href;
const failures = [];
const fail = (what) => failures.push(what);

// A new, empty profile for every check (Playwright passes it as --user-data-dir).
const profile = mkdtempSync(join(tmpdir(), "crossbrief-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
try {
  // Nothing but the page itself may load: any other request is recorded and refused.
  const requests = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    requests.push(url);
    return url === page_url ? route.continue() : route.abort();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("dialog", (d) => { fail(`a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on("pageerror", (e) => fail(`script error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") fail(`console error: ${m.text()}`); });
  await page.goto(page_url, { waitUntil: "load" });
  await page.screenshot({ path: screenshot, fullPage: true });
  // What an analyst sees on first load.
  await page.screenshot({ path: screenshot.replace(/\.png$/, "") + ".first-screen.png" });

  const foreign = requests.filter((u) => u !== page_url);
  if (foreign.length) fail(`requests beyond the page: ${foreign.join(", ")}`);

  // Expectations from brief.json, handed to the page.
  const expect = {
    citations: [...brief.brief.matchAll(/\[(\d+(?:\s*,\s*\d+)*)\]/g)]
      .flatMap((m) => m[1].split(",").map((n) => Number(n.trim()))),
    sources: brief.sources.map((s) => ({ n: s.n, id: s.id })),
    articles: brief.articles.map((a) => ({
      id: a.id,
      language: a.language,
      low: a.sentences.filter((s) => s.low_confidence).map((s) => s.text),
      flagged: a.sentences.filter((s) => !s.low_confidence && s.flags.length).map((s) => s.text),
    })),
    brief_low: brief.brief_sentences.filter((s) => s.low_confidence).length,
    injected,
  };
  const found = await page.evaluate((expect) => {
    const problems = [];
    const byId = (id) => document.getElementById(id);
    const slug = (id) => [...id].map((c) => /[A-Za-z0-9_]/.test(c) ? c : `.${c.codePointAt(0).toString(16)}.`).join("");

    // Every in-page link lands somewhere; every citation of the brief is a link to its source.
    const links = [...document.querySelectorAll('a[href^="#"]')];
    for (const a of links) {
      const target = decodeURIComponent(a.getAttribute("href").slice(1));
      if (!byId(target)) problems.push(`link to #${target} has no target`);
    }
    const cites = [...document.querySelectorAll("#brief a.cite")];
    const cited = cites.map((a) => Number(a.textContent));
    if (JSON.stringify(cited) !== JSON.stringify(expect.citations)) {
      problems.push(`brief citations ${JSON.stringify(cited)} != brief.json's ${JSON.stringify(expect.citations)}`);
    }
    for (const a of cites) {
      const source = expect.sources.find((s) => s.n === Number(a.textContent));
      const want = source && `#article-${slug(source.id)}`;
      if (a.getAttribute("href") !== want) problems.push(`citation [${a.textContent}] links to ${a.getAttribute("href")}, not ${want}`);
    }

    // Right-to-left text is set so, by attribute and in the rendering.
    const rtl = [];
    for (const article of expect.articles) {
      const section = byId(`article-${slug(article.id)}`);
      if (!section) { problems.push(`no section for article ${article.id}`); continue; }
      const cells = [...section.querySelectorAll("td.orig")];
      if (!cells.length) problems.push(`article ${article.id} shows no original`);
      for (const td of cells) {
        if (td.lang !== article.language) problems.push(`${article.id}: original cell lang=${td.lang}`);
        if (article.language === "ar" && (td.dir !== "rtl" || getComputedStyle(td).direction !== "rtl")) {
          problems.push(`${article.id}: Arabic cell is ${getComputedStyle(td).direction}`);
        }
      }
      if (article.language === "ar") rtl.push(article.id);

      // The highlighted sentences are exactly brief.json's low-confidence (and flagged) ones.
      const shown = (cls) => [...section.querySelectorAll(`td.en .s.${cls}`)].map((s) => s.textContent);
      for (const [cls, want] of [["low", article.low], ["flagged", article.flagged]]) {
        const got = shown(cls);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          problems.push(`${article.id}: ${cls} sentences ${JSON.stringify(got)} != brief.json's ${JSON.stringify(want)}`);
        }
      }
      for (const s of section.querySelectorAll("td.en .s.low, td.en .s.flagged")) {
        const why = byId(s.getAttribute("aria-describedby"));
        if (!why || !why.textContent.startsWith("confidence ")) problems.push(`${s.id}: no reason beside it`);
        if (s.tabIndex !== 0) problems.push(`${s.id}: not reachable by keyboard`);
      }
    }
    const brief_low = document.querySelectorAll("#brief .s.low").length;
    if (brief_low !== expect.brief_low) problems.push(`brief marks ${brief_low} sentences low, brief.json ${expect.brief_low}`);

    // Nothing is left out of the checks below for being folded or shown only on focus.
    for (const d of document.querySelectorAll("details")) d.open = true;
    for (const why of document.querySelectorAll(".why")) why.style.display = "inline";

    // Where sources differ: each value's link lands on a sentence (or, for an untranslated
    // source, a paragraph) that gives the value.
    let differences = 0;
    for (const row of document.querySelectorAll("#differences tbody tr")) {
      const cells = row.querySelectorAll("td");
      const value = cells[cells.length - 2].textContent;
      const link = cells[cells.length - 1].querySelector("a");
      const target = link && byId(link.getAttribute("href").slice(1));
      differences += 1;
      if (!target || !(target.matches(".s") || target.matches("tr")) || !target.textContent.includes(value)) {
        problems.push(`the ${JSON.stringify(value)} of "${row.textContent}" links to ${link && link.getAttribute("href")}, not to a sentence giving it`);
      }
    }

    // Text contrast (WCAG AA: 4.5:1, 3:1 for large text) of every element that shows text.
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    let measured = 0;
    let lowest = Infinity;
    for (const el of document.body.querySelectorAll("*")) {
      const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!text || !el.getClientRects().length) continue;
      const style = getComputedStyle(el);
      const [fg, bg] = [luminance(rgb(style.color)), luminance(background(el))];
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      measured += 1;
      lowest = Math.min(lowest, ratio);
      if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)} of <${el.tagName.toLowerCase()} class="${el.className}">`);
    }

    // Untrusted text stays text: the page's one script is its own, and the strings show.
    const scripts = document.scripts.length;
    if (scripts !== 1) problems.push(`${scripts} script elements`);
    for (const el of document.querySelectorAll("*")) {
      for (const attr of el.getAttributeNames()) {
        if (attr.startsWith("on")) problems.push(`<${el.tagName.toLowerCase()}> has an event handler ${attr}`);
      }
    }
    const text = document.body.textContent;
    for (const s of expect.injected) if (!text.includes(s)) problems.push(`${JSON.stringify(s)} is not shown as text`);

    return {
      problems,
      links: links.length,
      differences,
      citations: cites.length,
      rtl,
      low: document.querySelectorAll("td.en .s.low").length,
      flagged: document.querySelectorAll("td.en .s.flagged").length,
      contrast: { elements: measured, lowest: Number(lowest.toFixed(2)) },
    };
  }, expect);
  failures.push(...found.problems);

  // Keyboard: Tab reaches the skip link first; j walks the marked sentences in order and
  // wraps around, k walks back.
  await page.keyboard.press("Tab");
  const first_tab = await page.evaluate(() => document.activeElement.className);
  if (first_tab !== "skip") fail(`first Tab stop is "${first_tab}", not the skip link`);
  const marked = await page.evaluate(() =>
    [...document.querySelectorAll("main .s.low, main .s.flagged")].map((s) => s.id));
  if (marked.some((id) => !id)) fail("a marked sentence has no id");
  if (marked.length) {
    await page.evaluate(() => document.activeElement.blur());
    const focused = async (key) => {
      await page.keyboard.press(key);
      return page.evaluate(() => document.activeElement.id);
    };
    const forward = [];
    for (let i = 0; i <= marked.length; i++) forward.push(await focused("j"));
    const want = [...marked, marked[0]];
    if (JSON.stringify(forward) !== JSON.stringify(want)) fail(`j walked ${JSON.stringify(forward)}, not ${JSON.stringify(want)}`);
    const back = await focused("k");
    if (back !== marked[marked.length - 1]) fail(`k from the first went to "${back}", not the last marked sentence`);
  }
  delete found.problems;
  console.log(JSON.stringify({ ...found, requests: requests.length, failures }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failures.length ? 1 : 0);
