"""The report's inline style sheet (screen, 800 px and print)."""

CSS = """
details { margin: 0.5em 0 1.5em; } summary { cursor: pointer; color: #8a4b00; }
ol.toc { columns: 2; font-size: 0.92em; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #222;
       max-width: 1100px; margin: 0.8em auto 2em; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.4em; margin: 0.2em 0; }
p.header { font-size: 0.82em; color: #444; margin: 0 0 0.3em; }
#findings { margin-top: 0.5em; }
h3.sof-first { margin-top: 0.5em; }
table.sof { font-size: 0.84em; width: 100%; }
table.sof td, table.sof th { padding: 0.2em 0.45em; }
table.sof .rate { font-weight: bold; white-space: nowrap; }
.sub { display: inline-block; font-size: 0.88em; color: #555; line-height: 1.25; }
.sub.other { color: #36587a; }
td.why { font-size: 0.92em; min-width: 14em; }
.cert { font-weight: bold; white-space: nowrap; }
.cert .sym { font-weight: normal; letter-spacing: -0.05em; }
.cert-high { color: #1b6e20; } .cert-moderate { color: #4d6b00; }
.cert-low { color: #8a4b00; } .cert-very-low { color: #a11d1d; }
p.legend { font-size: 0.82em; color: #555; margin-top: 0; }
table.domains { font-size: 0.8em; }
pre { white-space: pre-wrap; font-size: 0.8em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #bbb; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.08em; margin-top: 1.6em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { border-bottom: 2px solid #888; background: #f4f4f4; }
.wide { max-width: 100%; overflow-x: auto; }
@media (max-width: 900px) {
  body { padding: 0 0.5em; }
  table { font-size: 0.78em; }
  th, td { padding: 0.2em 0.35em; }
}
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { width: 100%; max-width: 1000px; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
.warnings li { color: #8a4b00; }
.methods { background: #fafafa; border-left: 3px solid #999; padding: 0.6em 1em; }
ol.refs { font-size: 0.9em; }
@media print {
  @page { size: A4; margin: 15mm 12mm; }
  body { max-width: none; margin: 0; padding: 0; font-size: 9.5pt; }
  details > summary { list-style: none; }
  table.sof { break-inside: auto; } table.sof tr { break-inside: avoid; }
  figure, tr, .methods { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .wide { overflow: visible; }
  figure img { border: none; }
}
"""

__all__ = ["CSS"]
