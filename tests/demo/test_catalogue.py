"""The demo's product catalogue in the lake: a name next to every product id."""

from __future__ import annotations

from pathlib import Path

from kirana.config import load_settings
from kirana.demo.instacart import load_sample, product
from kirana.demo.showcase import install_catalogue
from kirana.lake.catalog import connect


def test_every_sample_product_gets_one_readable_name_once(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    first = install_catalogue(settings)
    assert f"{len(load_sample().product_ids):,} products" in first
    assert "kept" in install_catalogue(settings)  # a second demo run leaves it alone
    lake = connect(settings.lake_dir)
    rows = lake.sql("SELECT product_id, name, department, price FROM products").fetchall()
    assert [r[0] for r in rows] == [str(p) for p in load_sample().product_ids]
    assert len({r[1] for r in rows}) == len(rows), "names are unique"
    for product_id, name, department, price in rows[:: max(1, len(rows) // 500)]:
        p = product(int(product_id))
        assert (name, department, price) == (p.name, p.department, p.price)
        assert name.endswith(f"#{product_id}") and not name.startswith("Product")
