//! The page around the report's sections: style, the one small script (sortable tables) and the skeleton. The page
//! reads fully without JavaScript; nothing is fetched from the network.

/// Style sheet, inlined.
pub const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
header { padding: 18px 28px; color: #fff; }
header.pass { background: #2e7d32; } header.warn { background: #b26a00; } header.fail { background: #b71c1c; }
header h1 { margin: 0 0 6px 0; font-size: 24px; }
header .summary { font-family: ui-monospace, Menlo, monospace; font-size: 13px; word-break: break-word; }
main { padding: 8px 28px 40px 28px; max-width: 1280px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px 18px; margin: 16px 0; }
h2 { font-size: 18px; margin: 4px 0 10px 0; }
h3 { font-size: 15px; margin: 14px 0 6px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
table.sortable th { cursor: pointer; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 600; border-radius: 3px; padding: 1px 6px; }
.status.pass { background: #e3f3e4; color: #1b5e20; } .status.warn { background: #fff1d6; color: #8a5200; }
.status.fail { background: #fde0e0; color: #8e1111; }
.muted { color: #5f6b7a; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plot { border: 1px solid #e3e6ea; border-radius: 4px; }
.reasons { max-width: 720px; font-size: 12px; }
code { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
ul.notes li { margin: 3px 0; }
"#;

/// Click a header to sort its table (a convenience: the table is already in a useful order).
pub const SCRIPT: &str = r#"
(function () {
  function key(cell) {
    var t = cell.getAttribute("data-v") || cell.textContent.trim();
    var n = parseFloat(t);
    return isNaN(n) ? t.toLowerCase() : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
        th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          return x < y ? -dir : x > y ? dir : 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
"#;

/// The whole page: title, verdict class (`pass`/`warn`/`fail`), header and body HTML.
pub fn page(title: &str, verdict_class: &str, header: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"poisonscan {version}\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header class=\"{verdict_class}\" id=\"verdict\">{header}</header>\n<main>\n{body}\n</main>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        version = crate::VERSION,
    )
}
