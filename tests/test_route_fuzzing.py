"""Every route of the plugin, fuzzed with generated parameters through TensorBoard's real WSGI app, both loaders.

Routes come from ``CNNVizPlugin.get_plugin_apps()`` and parameter names from the plugin's own parsing calls, so
a new route or parameter is fuzzed without touching this file. Each request starts from a valid request (a
real run, layer, step and blob key of the demo) and replaces, empties or drops some parameters with hostile
values (wrong types, huge numbers, NaN, traversal paths, NUL bytes, unicode, markup, broken percent-escapes),
so the generated requests reach the deep code paths too, not only the parameter checks. Seeded: a failure
prints the exact query to replay.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from urllib.parse import quote

import pytest
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from tb_cnnviz import metadata, plugin

from helpers import get_json

HEALTHY = "healthy_lr0.05"
PREFIX = f"/data/plugin/{metadata.PLUGIN_NAME}"
#: Every route the plugin serves, from the plugin itself.
ROUTES = sorted(plugin.CNNVizPlugin(base_plugin.TBContext()).get_plugin_apps())
#: Every query parameter the plugin reads (``_text(request, "run")``, ``_integer(request, "step")``, ...).
PARAMS = sorted(set(re.findall(r'request, "(\w+)"', inspect.getsource(plugin))) | {"kind"})
REQUESTS_PER_ROUTE = 40

HOSTILE = [
    "", " ", "abc", "1.5", "1e400", "0x10", "-0", "+5", " 7 ", "٣", "１２",  # wrong types, unicode digits
    str(2**63), str(2**63 - 1), str(-(2**63) - 1), "9" * 5000, "-1", "NaN", "nan", "inf", "-Infinity",
    "null", "true", "[]", "{}", '{"a": 1}',
    "../../../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "%2e%2e%2f%2e%2e%2f", "....//....//",
    "\x00", "conv1\x00", "\x00../x", "a\nb", "\r\n", "\x01\x7f\x1b[31m",
    "ünï", "日本語", "\U0001f600", "\u202eevil", "\ufeff", "\ud7ff", "Ω" * 3000,
    "<script>alert(1)</script>", '"><svg onload=alert(1)>', "<img src=x onerror=alert(1)>", "' OR 1=1 --",
    "${7*7}", "{{7*7}}", "%s%s%s%n", "x" * 5000, "cnnviz/activations/conv1", "activations/conv1",
]
SERVED_TYPES = {"application/json", "image/png", "text/javascript", "text/css"}
#: Query strings TensorBoard receives verbatim: escapes that decode to nothing sensible.
RAW_QUERIES = ["run=%FF%FE", "run=%", "run=%zz", "layer=%C0%AF", "step=%00", "run=a&run=b", "&&&", "=x", "key=%ED%A0%80"]


def blob_key_variants(key: str) -> list[str]:
    """A real blob key, cut, with a changed character, and keys in both loaders' formats naming nothing."""
    import base64

    fake = [["e", metadata.PLUGIN_NAME, HEALTHY, "cnnviz/activations/conv1", 10**12, 0], ["x"], {"a": 1}, 3, None]
    encoded = [base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=") for value in fake]
    return [key, key[: len(key) // 2], key[:-1] + ("A" if key[-1] != "A" else "B"), key + "==", *encoded]


class RequestGenerator:
    """Seeded requests for one route: a valid baseline with some parameters replaced, emptied or dropped."""

    def __init__(self, seed: int, valid: dict[str, list[str]]):
        self.random = random.Random(seed)
        self.valid = valid

    def value(self, name: str) -> str:
        pick = self.random.random()
        if pick < 0.3:
            return self.random.choice(self.valid[name])
        if pick < 0.4:  # a valid value of another parameter: a layer as a run, a blob key as a step
            return self.random.choice(self.valid[self.random.choice(PARAMS)])
        if pick < 0.5:  # an integer of any size and sign
            return str(self.random.randint(-(10 ** self.random.randint(0, 30)), 10 ** self.random.randint(0, 30)))
        if pick < 0.65:  # any characters but surrogates (which no URL can carry), controls included
            return "".join(chr(self.random.choice([self.random.randint(0, 0xD7FF), self.random.randint(0xE000, 0x10FFFF)]))
                           for _ in range(self.random.randint(1, 40)))
        return self.random.choice(HOSTILE)

    def query(self) -> dict[str, str] | str:
        if self.random.random() < 0.08:
            return self.random.choice(RAW_QUERIES)
        params = {name: self.random.choice(values) for name, values in self.valid.items()}
        for name in self.random.sample(PARAMS, self.random.randint(1, 3)):
            if self.random.random() < 0.2:
                del params[name]
            else:
                params[name] = self.value(name)
        if self.random.random() < 0.1:
            params[self.random.choice(HOSTILE[:20]) or "unexpected"] = self.random.choice(HOSTILE)
        return params

    def static_name(self) -> str:
        pick = self.random.random()
        if pick < 0.5:
            return quote(self.random.choice(HOSTILE), safe="/%")
        return self.random.choice(["index.js", "style.css", "dom.js", "views/top_activations.js"]) + self.random.choice(
            ["", "/..", "%00", "/../../setup.py", ".map", "?v=1"])


def valid_parameters(client: Client) -> dict[str, list[str]]:
    """Real values from the demo's data, so mutated requests start deep inside the routes."""
    _, sample = get_json(client, "sample", run=HEALTHY, kind="activations", layer="conv2", step=20)
    _, runs = get_json(client, "runs")
    layers = sorted({layer for run in runs["runs"] for kind in metadata.BLOB_KINDS + metadata.TENSOR_KINDS
                     for layer in run[kind]})
    valid = {
        "run": [run["run"] for run in runs["runs"]],
        "model": sorted({run["model"] for run in runs["runs"]} | {"generator"}),
        "kind": list(metadata.BLOB_KINDS + metadata.TENSOR_KINDS),
        "layer": layers,
        "step": ["0", "20", "239"],
        "index": ["0", "3"],
        "max_steps": ["2", "320", "100000"],
        "key": [variant for key in sample["blobs"][:2] for variant in blob_key_variants(key)],
    }
    missing = set(PARAMS) - set(valid)
    assert not missing, f"the plugin reads parameters this fuzzer has no valid values for: {missing}"
    return valid


def check(reply, url: str) -> str | None:
    """What is wrong with one reply, or None: 5xx, a traceback in the body, an error that is not JSON."""
    body = reply.get_data()
    content_type = reply.headers.get("Content-Type", "")
    if reply.status_code >= 500:
        return f"{reply.status_code} for {url}: {body[:200]!r}"
    if b"Traceback" in body or b'File "' in body:
        return f"traceback in the body of {url}"
    if reply.status_code == 200 and content_type.split(";")[0] not in SERVED_TYPES:
        return f"200 as {content_type} for {url}"
    if reply.status_code >= 400:
        if not content_type.startswith("application/json"):
            return f"{reply.status_code} as {content_type} for {url}"
        error = json.loads(body).get("error")
        if not isinstance(error, str) or not error:
            return f"{reply.status_code} without an error message for {url}: {body[:200]!r}"
    return None


@pytest.fixture(scope="module")
def valid(demo_client: Client) -> dict[str, list[str]]:
    return valid_parameters(demo_client)


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_generated_parameters_never_give_a_5xx_or_a_traceback(demo_client, valid, route):
    generator = RequestGenerator(seed=sum(map(ord, route)), valid=valid)
    problems, statuses, bodies = [], [], set()
    for _ in range(REQUESTS_PER_ROUTE):
        if route.endswith("/*"):
            url = PREFIX + route[:-1] + generator.static_name()
            reply = demo_client.get(url)
        else:
            query = generator.query()
            reply = demo_client.get(PREFIX + route, query_string=query)
            url = f"{PREFIX}{route}?{query}"
        statuses.append(reply.status_code)
        bodies.add(reply.get_data())
        problem = check(reply, url)
        if problem:
            problems.append(problem)
    assert problems == [], "\n".join(problems)
    # The generator reaches the error paths, unless the route ignores its parameters (the same reply each time).
    assert any(400 <= s < 500 for s in statuses) or len(bodies) == 1, statuses


@pytest.mark.parametrize("path", ["/static/", "/static"])
def test_the_static_folder_itself_is_a_json_404(demo_client, path):
    """TensorBoard strips the trailing slash, so ".../static/" missed the "/static/*" route: a text/plain 404."""
    reply = demo_client.get(PREFIX + path)
    assert reply.status_code == 404 and check(reply, path) is None
