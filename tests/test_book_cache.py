"""A package edit must re-execute chapters whose own cells did not change."""

import textwrap

import pytest

from r2ska import book

pytestmark = pytest.mark.book

CONFIG = """\
title: Cache test
only_build_toc_files: true
execute:
  execute_notebooks: cache
exclude_patterns: ["_build", "pkg"]
"""
TOC = "format: jb-book\nroot: page\n"
PAGE = """\
---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
---

# Page

```{code-cell} ipython3
from pathlib import Path

print("value:", Path("pkg/module.py").read_text().strip())
```
"""


def _html_value(book_dir):
    html = (book_dir / "_build" / "html" / "page.html").read_text()
    return "value: x = 2" in html, "value: x = 1" in html


def test_package_edit_reexecutes_chapter(tmp_path):
    (tmp_path / "_config.yml").write_text(CONFIG)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "page.md").write_text(textwrap.dedent(PAGE))
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")

    assert book.build_book(tmp_path, strict=False, package_dir=package) == 0
    assert _html_value(tmp_path) == (False, True)

    (package / "module.py").write_text("x = 2\n")
    assert book.build_book(tmp_path, strict=False, package_dir=package) == 0
    assert _html_value(tmp_path) == (True, False)
