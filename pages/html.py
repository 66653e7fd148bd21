"""Self-contained HTML pages: jinja2 templates, pictures embedded as data URIs.

No script, font or style sheet is fetched: the pages open offline.
"""

import base64
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

import jinja2
import markupsafe

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f1f1f1; }
.ok { color: #176f2c; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.muted { color: #666; } img { max-width: 100%; }
nav a { margin-right: 1em; }
pre { background: #f6f6f6; padding: .5em; white-space: pre-wrap; font-size: 12px; }
summary { cursor: pointer; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; margin: .6em 0; }
.thumbs figure { margin: 0; width: 112px; font-size: 11px; }
.thumbs figcaption { overflow-wrap: anywhere; }
.verdict { font-size: 1.15em; }
</style></head>
<body>
<h1>{{ title }}</h1>
{% if subtitle %}<p class="muted">{{ subtitle }}</p>{% endif %}
<nav>{% for s in sections %}<a href="#{{ s.anchor }}">{{ s.heading }}</a>{% endfor %}</nav>
{% for s in sections %}
<section id="{{ s.anchor }}"><h2>{{ s.heading }}</h2>
{{ s.body }}
</section>
{% endfor %}
</body></html>
"""

_TABLE = """<table>{% if headers %}<tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>{% endif %}
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


class Section:
    """One titled block of a page; body is trusted HTML built with the helpers here."""

    def __init__(self, heading: str, parts: Iterable[Any], anchor: Optional[str] = None):
        self.heading = heading
        self.anchor = anchor or ''.join(c if c.isalnum() else '-' for c in heading.lower())
        self.body = markupsafe.Markup('\n').join(parts)


def image(png: bytes, alt: str) -> markupsafe.Markup:
    """An <img> with the PNG inlined as a data URI."""
    data = base64.b64encode(png).decode('ascii')
    return markupsafe.Markup('<img alt="{}" src="data:image/png;base64,{}">').format(alt, data)


def thumbnails(items: Iterable[Tuple[bytes, Any]]) -> markupsafe.Markup:
    """A wrapping row of small pictures (PNG bytes), each with its caption."""
    figures = [markupsafe.Markup('<figure>{}<figcaption>{}</figcaption></figure>').format(
        image(png, str(caption)), caption) for png, caption in items]
    return (markupsafe.Markup('<div class="thumbs">') + markupsafe.Markup('').join(figures)
            + markupsafe.Markup('</div>'))


def verdict(passed: bool, text: Any) -> markupsafe.Markup:
    """A page's one-line verdict, coloured by whether it passed."""
    return markupsafe.Markup('<p class="verdict {}">{}</p>').format(
        'ok' if passed else 'fail', text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] = ()) -> markupsafe.Markup:
    """A table; cells are escaped unless they are Markup."""
    return markupsafe.Markup(_ENV.from_string(_TABLE).render(rows=rows, headers=headers))


def counts_table(counts_by_split: Mapping[str, Mapping[str, int]],
                 class_names: Sequence[str], shares: bool = False) -> markupsafe.Markup:
    """Images per class (rows, so any number of classes fits the page) and split
    (columns), with an 'all classes' row; shares: each count with its share of the split."""
    splits = list(counts_by_split)
    totals = {split: sum(counts_by_split[split].values()) for split in splits}

    def cell(split: str, count: int) -> str:
        return f'{count} ({count / totals[split]:.1%})' if shares and totals[split] else str(count)
    rows = [[name] + [cell(split, counts_by_split[split].get(name, 0)) for split in splits]
            for name in class_names]
    return table(rows + [['all classes'] + [totals[split] for split in splits]],
                 ['class'] + splits)


def heading(text: Any) -> markupsafe.Markup:
    """A sub-heading inside a section."""
    return markupsafe.Markup('<h3>{}</h3>').format(text)


def paragraph(text: Any, css_class: str = '') -> markupsafe.Markup:
    if css_class:
        return markupsafe.Markup('<p class="{}">{}</p>').format(css_class, text)
    return markupsafe.Markup('<p>{}</p>').format(text)


def link(href: str, text: str) -> markupsafe.Markup:
    return markupsafe.Markup('<a href="{}">{}</a>').format(href, text)


def status(passed: bool, yes: str = 'PASSED', no: str = 'FAILED') -> markupsafe.Markup:
    return markupsafe.Markup('<span class="{}">{}</span>').format(
        'ok' if passed else 'fail', yes if passed else no)


def bullet_list(items: Iterable[Any]) -> markupsafe.Markup:
    parts: List[markupsafe.Markup] = [markupsafe.Markup('<li>{}</li>').format(i) for i in items]
    return markupsafe.Markup('<ul>') + markupsafe.Markup('').join(parts) + markupsafe.Markup(
        '</ul>')


def raw(html: str) -> markupsafe.Markup:
    """HTML produced by a trusted library (e.g. pandas DataFrame.to_html)."""
    return markupsafe.Markup(html)


def page(title: str, sections: Sequence[Section], subtitle: str = '') -> str:
    """The whole document."""
    return _ENV.from_string(_PAGE).render(title=title, sections=sections, subtitle=subtitle)


def preformatted(text: Any) -> markupsafe.Markup:
    """Text shown as is (e.g. JSON), escaped."""
    return markupsafe.Markup('<pre>{}</pre>').format(text)


def details(summary: Any, parts: Iterable[Any]) -> markupsafe.Markup:
    """A collapsed block: the summary line opens it; parts are escaped unless Markup."""
    body = markupsafe.Markup('\n').join(parts)
    return markupsafe.Markup('<details><summary>{}</summary>\n{}\n</details>').format(
        summary, body)
