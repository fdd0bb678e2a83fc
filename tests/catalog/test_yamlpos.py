"""Loading YAML with positions keeps nothing between loads: reloads run in threads, forever."""

from __future__ import annotations

import gc
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from bootserver.catalog.yamlpos import load_documents

TEXT = "".join(f"---\nkind: Machine\nmetadata: {{name: node{i}}}\nspec: {{mac: '52:54:00:00:00:{i:02x}', "
               f"profile: p, metadata: {{disk: /dev/vd{i}, tags: [a, b, c]}}}}\n" for i in range(10))


def load() -> list:
    return [(d.index, d.line, d.data) for d in load_documents(TEXT)]


def test_repeated_loads_do_not_grow_memory():
    expected = load()
    tracemalloc.start()
    try:
        for _ in range(5):  # warm up caches (PyYAML's resolvers, interned strings)
            load()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(25):
            assert load() == expected
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 25 loads"


def test_loads_in_threads_agree():
    expected = load()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: load(), range(32)))
    assert all(result == expected for result in results)
    assert expected[3][2]["spec"]["mac"] == "52:54:00:00:00:03" and expected[3][1] == 14
