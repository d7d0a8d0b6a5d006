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
<tbody>{% for row in section.table.rows %}<tr>{% for cell in row %}<td{% if cell.text %} class="text"{% endif %}>{{ cell.value }}</td>{% endfor %}</tr>
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
