"""report.html's jinja2 template, a Python string so it ships with the package (no package data to declare).
Self-contained and offline: inline CSS, inline SVG plots, system fonts, no script, nothing fetched."""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>isobench report: {{ name }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1300px;
         padding: 0 1em; color: #1d1d1f; background: #fff; }
  h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
  p.note { color: #444; max-width: 80em; }
  .rule-based { display: inline-block; background: #fff3cd; color: #7a5a00; border: 1px solid #e0c36c;
                border-radius: 4px; padding: 0.1em 0.5em; font-size: 0.85em; font-weight: 600; }
  .scroll { overflow-x: auto; }
  table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
  th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
  th { background: #f3f4f6; } td.text { text-align: left; }
  tr:nth-child(even) td { background: #fafafa; }
  figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
  figcaption { font-weight: 600; margin-bottom: 0.3em; }
</style>
</head>
<body>
<h1>isobench report: {{ name }}</h1>
<p class="note">{{ intro }}</p>
{% if rule_based %}<p><span class="rule-based">rule-based judge</span> {{ rule_based_note }}</p>{% endif %}
{% for section in sections %}
<h2>{{ section.title }}{% if section.soft and rule_based %} <span class="rule-based">rule-based judge</span>{% endif %}</h2>
{% if section.note %}<p class="note">{{ section.note }}</p>{% endif %}
{% if section.table is none %}{% elif section.table.rows %}
<div class="scroll"><table>
<thead><tr>{% for c in section.table.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in section.table.rows %}<tr>{% for cell in row %}<td{% if cell.text %} class="text"{% endif %}>\
{% if cell.href %}<a href="{{ cell.href }}">{{ cell.value }}</a>{% else %}{{ cell.value }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table></div>
{% else %}<p>Nothing of this kind in this run.</p>{% endif %}
{% endfor %}
<h2>Plots</h2>
{% for title, svg in plots.items() %}
<figure><figcaption>{{ title }}</figcaption>{{ svg | safe }}</figure>
{% endfor %}
<p class="note">{{ files }}</p>
</body>
</html>
"""

# One attempt's page (report/attempt_page.py): the same style, the untrusted texts escaped and cut.
ATTEMPT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>attempt {{ attempt_id }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1300px;
         padding: 0 1em; color: #1d1d1f; background: #fff; }
  h1 { font-size: 1.3em; word-break: break-all; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
  table.facts td { padding: 0.15em 0.8em 0.15em 0; vertical-align: top; } table.facts td:first-child { color: #555; }
  pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; font-size: 0.8em; max-height: 40em; white-space: pre-wrap; }
  .diff span { display: block; white-space: pre; } .add { background: #e6ffec; } .del { background: #ffebe9; }
  .hunk { color: #6f42c1; } .file { font-weight: 600; }
  .step { border-left: 3px solid #ddd; margin: 0.6em 0; padding-left: 0.8em; } .role { font-weight: 600; color: #555; }
  figure svg { max-width: 100%; height: auto; } summary { cursor: pointer; }
</style>
</head>
<body>
<p><a href="../../report.html">&larr; the run's report</a></p>
<h1>{{ attempt_id }}</h1>
<table class="facts">{% for k, v in facts %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
{% if plot %}<h2>Samples</h2><figure>{{ plot | safe }}</figure>{% endif %}
<h2>Patch</h2>
{% if diff %}<pre class="diff">{% for line in diff %}<span class="{{ line.kind }}">{{ line.text }}</span>{% endfor %}</pre>
{% else %}<p>No patch.</p>{% endif %}
<h2>Judges</h2>
{% if votes %}{% if hack_flags %}<p>Hack flags: {{ hack_flags }}</p>{% endif %}
{% for v in votes %}<details><summary>{{ v.judge }} ({{ v.order }}){% if v.error %}: {{ v.error }}{% endif %}</summary>
<pre>{{ v.verdict }}</pre></details>{% endfor %}
{% else %}<p>Not judged.</p>{% endif %}
<h2>Prompt</h2>
{% if prompt %}<details><summary>what the agent was told</summary><pre>{{ prompt }}</pre></details>{% else %}<p>No prompt kept.</p>{% endif %}
<h2>Trajectory</h2>
{% if steps %}{% for s in steps %}<div class="step"><div class="role">{{ loop.index }}. {{ s.role }}</div><pre>{{ s.content }}</pre></div>{% endfor %}
{% else %}<p>No step-by-step trajectory from this agent; see its log below.</p>{% endif %}
<h2>Logs</h2>
{% for log in logs %}<details><summary>{{ log.name }}</summary><pre>{{ log.text }}</pre></details>
{% else %}<p>No logs.</p>{% endfor %}
</body>
</html>
"""
