// brief.html's only script (allowed by its hash in the page's Content-Security-Policy):
// j / k move the focus to the next / previous marked sentence; printing opens every fold.
(() => {
  const marked = () => [...document.querySelectorAll("main .s.low, main .s.flagged")];
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || (e.key !== "j" && e.key !== "k")) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    const all = marked();
    if (!all.length) return;
    const at = all.indexOf(document.activeElement);
    const next = e.key === "j" ? (at + 1) % all.length : (at <= 0 ? all.length : at) - 1;
    all[next].focus();
    all[next].scrollIntoView({ block: "center" });
    e.preventDefault();
  });
  addEventListener("beforeprint", () => {
    for (const d of document.querySelectorAll("details")) d.open = true;
  });
})();
