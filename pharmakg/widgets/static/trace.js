// TraceExplorer view: draws the genealogy the Python side computed (nodes with x/y
// levels, edges) as an SVG, left to right in material-flow order. No logic beyond
// drawing and turning clicks into model changes; no network access, no CDN.
const COLORS = { lot: "#4c78a8", batch: "#f58518", other: "#9d9d9d" };
const KIND_FILL = {
  raw: "#72b7b2", drug_substance: "#54a24b", intermediate: "#eeca3b",
  drug_product: "#e45756", packaging: "#b279a2",
};

function el(tag, attrs = {}, text) {
  const svgTags = ["svg", "g", "circle", "rect", "line", "path", "text", "title", "marker", "defs"];
  const node = svgTags.includes(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function csv(rows, columns) {
  const esc = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => esc(r[c])).join(","))].join("\n") + "\n";
}

function render({ model, el: root }) {
  root.classList.add("pharmakg-trace");
  const bar = el("div", { class: "pkg-bar", style: "display:flex;gap:6px;align-items:center;margin-bottom:6px" });
  const input = el("input", { type: "text", list: "pkg-suggest-" + model.cid, placeholder: "lot or batch id", class: "pkg-query", style: "width:16em" });
  const list = el("datalist", { id: "pkg-suggest-" + model.cid });
  const dir = el("select", { class: "pkg-direction" });
  dir.append(el("option", { value: "up" }, "upstream (what went in)"), el("option", { value: "down" }, "downstream (where it went)"));
  const depth = el("input", { type: "number", min: "0", class: "pkg-depth", title: "max depth (0 = all)", style: "width:4em" });
  const go = el("button", { class: "pkg-go" }, "Trace");
  const save = el("button", { class: "pkg-csv" }, "Export CSV");
  bar.append(input, list, dir, depth, go, save);
  const status = el("div", { class: "pkg-status", style: "font-size:90%;color:#555;margin:2px 0" });
  const canvas = el("div", { class: "pkg-canvas", style: "overflow:auto;border:1px solid #ddd;max-height:520px" });
  const details = el("div", { class: "pkg-details", style: "font-family:monospace;font-size:90%;white-space:pre-wrap;margin-top:6px" });
  root.append(bar, status, canvas, details);

  const sync = () => {
    input.value = model.get("query");
    dir.value = model.get("direction");
    depth.value = String(model.get("depth"));
  };
  const suggest = () => {
    list.replaceChildren(...model.get("suggestions").map((s) => el("option", { value: s })));
  };
  const draw = () => {
    const nodes = model.get("nodes");
    const edges = model.get("edges");
    const selected = model.get("selected");
    const err = model.get("error");
    status.textContent = err ? err : nodes.length ? `${nodes.length} nodes, ${edges.length} edges` : "";
    status.style.color = err ? "#b00" : "#555";
    const dx = 170, dy = 46, pad = 30;
    const width = pad * 2 + dx * (Math.max(0, ...nodes.map((n) => n.x)) + 1);
    const height = pad * 2 + dy * (Math.max(0, ...nodes.map((n) => n.y)) + 1);
    const svg = el("svg", { width, height, class: "pkg-dag" });
    const defs = el("defs");
    const marker = el("marker", { id: "pkg-arrow-" + model.cid, viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" });
    marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#999" }));
    defs.append(marker);
    svg.append(defs);
    const pos = (n) => [pad + n.x * dx + 10, pad + n.y * dy + 10];
    for (const [a, b] of edges) {
      const [x1, y1] = pos(nodes[a]);
      const [x2, y2] = pos(nodes[b]);
      svg.append(el("line", { x1: x1 + 9, y1, x2: x2 - 11, y2, stroke: "#bbb", "marker-end": `url(#pkg-arrow-${model.cid})` }));
    }
    nodes.forEach((n) => {
      const [x, y] = pos(n);
      const g = el("g", { class: "pkg-node", "data-id": n.id, "data-kind": n.kind, style: "cursor:pointer" });
      const fill = KIND_FILL[n.material_kind] || COLORS[n.kind] || COLORS.other;
      const shape = n.kind === "batch"
        ? el("rect", { x: x - 9, y: y - 9, width: 18, height: 18, rx: 3, fill, stroke: COLORS.batch })
        : el("circle", { cx: x, cy: y, r: 9, fill, stroke: COLORS.lot });
      if (n.iri === selected) shape.setAttribute("stroke-width", "4");
      if (n.flag) shape.setAttribute("stroke", "#d62728"), shape.setAttribute("stroke-width", "3");
      g.append(shape, el("title", {}, `${n.kind} ${n.id}${n.flag ? " - " + n.flag : ""}`));
      g.append(el("text", { x: x + 13, y: y + 4, "font-size": "11" }, n.id + (n.flag ? " !" : "")));
      g.addEventListener("click", () => { model.set("selected", n.iri); model.save_changes(); });
      g.addEventListener("dblclick", () => { model.set("query", n.id); model.save_changes(); });
      svg.append(g);
    });
    canvas.replaceChildren(svg);
  };
  const show = () => {
    const d = model.get("details");
    details.textContent = Object.keys(d).length
      ? Object.entries(d).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`).join("\n")
      : "click a node for its details; double-click to re-centre on it";
  };
  go.addEventListener("click", () => {
    model.set("query", input.value.trim());
    model.set("direction", dir.value);
    model.set("depth", parseInt(depth.value || "0", 10));
    model.save_changes();
  });
  input.addEventListener("input", () => { model.set("typed", input.value); model.save_changes(); });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") go.click(); });
  save.addEventListener("click", () => {
    const rows = model.get("table");
    const blob = new Blob([csv(rows, model.get("columns"))], { type: "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: `genealogy-${model.get("query")}.csv` });
    document.body.append(a); a.click(); a.remove();
  });
  model.on("change:nodes", draw);
  model.on("change:edges", draw);
  model.on("change:error", draw);
  model.on("change:selected", draw);
  model.on("change:details", show);
  model.on("change:suggestions", suggest);
  model.on("change:query", sync);
  model.on("change:direction", sync);
  model.on("change:depth", sync);
  sync(); draw(); show(); suggest();
}

export default { render };
