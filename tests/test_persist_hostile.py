"""Hostile explainer files: each must raise PersistenceError, never crash or hang.

The per-array SHA-256 checksums of a file live in the file itself, unkeyed:
anyone who edits an array can recompute them. So every case here is built
with the public file format *and recomputed checksums* (array digests, the
metadata digest, zip CRCs): only treeinf's own validation stands between
the file and the numba kernels. Cases are the ones reported in issue #11
(children and roots out of range, self-loops, truncated and garbage arrays,
float and 2-D index arrays, tile and leaf-group indices, size bombs, deep
metadata) and more of the same kind.

All cases are loaded in one subprocess under a 2 GB address-space limit
(``resource.setrlimit(RLIMIT_AS)``), so a segfault, an abort or a
MemoryError is seen as such and cannot take the test run down; the
subprocess reports, per case, the exception and how long loading took. A
hang is caught by a generous timeout on the whole subprocess, never by
asserting on a case's wall time.

The size-bomb cases (a member or metadata that inflates to gigabytes from a
few megabytes) are refused from their declared sizes before anything is
inflated; their messages must name the limit. Their SHA-256 fields are not
computed (that would hash gigabytes), which is why the message, not just
the error class, is checked.
"""
import functools
import io
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import treeinf
from treeinf import _checks, _persist
from treeinf.exceptions import ModelMismatchError, PersistenceError
from test_persist import _data, _fitted, _model, _members, _npy, _zip

LIMIT_AS = 2 << 30  # the address-space limit the cases are loaded under


# ----------------------------------------------------------------- building
@functools.lru_cache(maxsize=None)
def _cases():
    return _build_cases()


@functools.lru_cache(maxsize=None)
def _saved(name, family):
    est = _fitted(name, family)
    buf = io.BytesIO()
    est.save(buf)
    return buf.getvalue()


def _node(meta, path):
    """The JSON node of an attribute: path ('ensemble_', 'node_left')."""
    node = meta["state"]
    for key in path:
        if node.get("type") == "object":
            node = node["state"]
        for k, v in node["items"]:
            if k == key:
                node = v
                break
        else:
            raise KeyError(key)
    return node


def _set_item(meta, path, value_node):
    """Add or replace attribute ``path[-1]`` in the dict node of ``path[:-1]``."""
    node = meta["state"]
    for key in path[:-1]:
        node = _node({"state": node}, (key,))
    if node.get("type") == "object":
        node = node["state"]
    items = [kv for kv in node["items"] if kv[0] != path[-1]]
    node["items"] = items + [[path[-1], value_node]]


def _rebuild(members, meta):
    """Recompute every array checksum and the metadata digest; zip again."""
    for key in meta["arrays"]:
        arr = np.lib.format.read_array(io.BytesIO(members[key + ".npy"]))
        meta["arrays"][key] = {"dtype": arr.dtype.str, "shape": list(arr.shape),
                               "sha256": _persist._array_digest(arr)}
    meta["sha256"] = _persist._meta_digest(meta)
    members["meta.json"] = json.dumps(meta).encode()
    return _zip(members)


def _open(data):
    members = _members(data)
    return members, json.loads(members["meta.json"])


def edit_array(name, family, path, fn):
    """The saved file with the array at ``path`` replaced by ``fn(array)``."""
    members, meta = _open(_saved(name, family))
    key = _node(meta, path)["name"]
    arr = np.lib.format.read_array(io.BytesIO(members[key + ".npy"])).copy()
    members[key + ".npy"] = _npy(fn(arr))
    return _rebuild(members, meta)


def add_array(name, family, path, arr):
    """The saved file with an extra array attribute at ``path``."""
    members, meta = _open(_saved(name, family))
    key = f"a{len(meta['arrays'])}"
    members[key + ".npy"] = _npy(arr)
    meta["arrays"][key] = {}
    _set_item(meta, path, {"type": "array", "name": key})
    return _rebuild(members, meta)


def edit_meta(name, family, fn):
    members, meta = _open(_saved(name, family))
    fn(meta)
    return _rebuild(members, meta)


def _set_value(path, value):
    return lambda meta: _set_item(meta, path, value)


def _param(key, value):
    def edit(meta):
        meta["params"]["items"] = [kv if kv[0] != key else [key, value]
                                   for kv in meta["params"]["items"]]
    return edit


def _tree_nodes():
    """(root of tree 0, an internal child of it, root of tree 1) of the
    LightGBM BoostIn model."""
    ens = _fitted("BoostIn", "lightgbm").ensemble_
    root0, root1 = int(ens.tree_root[0]), int(ens.tree_root[1])
    child = int(ens.node_left[root0])
    assert ens.node_left[root0] >= 0 and ens.node_left[child] >= 0  # depth >= 2
    leaf = int(np.flatnonzero(ens.node_left < 0)[0])
    return root0, child, root1, leaf


def _ens(field, fn, name="BoostIn", family="lightgbm"):
    return edit_array(name, family, ("ensemble_", field), fn)


def _put(index, value):
    def fn(a):
        a[index] = value
        return a
    return fn


# raw zip members: deflate bombs and directories too large for zipfile.writestr
def _raw_zip(members, zip64_count=False):
    """A zip from (name, stored bytes, method, crc, size, flags) tuples."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size, flags in members:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc,
                           len(data), size, len(n), 0) + n + data
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, flags, method, 0, 0,
                               crc, len(data), size, len(n), 0, 0, 0, 0, 0, offset) + n
    count, cd_offset = len(members), len(out)
    out += central
    if zip64_count:
        z64 = len(out)
        out += struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                           len(central), cd_offset)
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, z64, 1)
        count = 0xFFFF
    out += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(central),
                       cd_offset, 0)
    return bytes(out)


def _deflated(prefix, n_zero_mb):
    """Raw deflate of ``prefix`` followed by n_zero_mb MiB of zeros (CRC included),
    built from one compressed block repeated: megabytes for gigabytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(1 << 20)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == block
    crc = zlib.crc32(prefix)
    return head + block * n_zero_mb + b"\x03\x00", crc  # \x03\x00: final empty block


def _with_members(extra, name="BoostIn", family="xgboost"):
    """The saved file's members as raw tuples, plus ``extra`` raw tuples."""
    raw = []
    for member, payload in _members(_saved(name, family)).items():
        raw.append((member, payload, 0, zlib.crc32(payload), len(payload), 0))
    return raw + extra


def array_bomb(n_mb):
    """A float64 array of n_mb MiB of zeros, listed consistently, deflated ~1000:1."""
    members, meta = _open(_saved("BoostIn", "xgboost"))
    key = _node(meta, ("_denom",))["name"]
    shape = (n_mb << 17,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    header = np.lib.format.magic(1, 0) + buf.getvalue()
    meta["arrays"][key] = {"dtype": "<f8", "shape": list(shape), "sha256": "0" * 64}
    meta["sha256"] = _persist._meta_digest(meta)
    members["meta.json"] = json.dumps(meta).encode()
    data, _ = _deflated(header, n_mb)
    raw = []
    for member, payload in members.items():
        if member == key + ".npy":
            raw.append((member, data, 8, 0, len(header) + (n_mb << 20), 0))
        else:
            raw.append((member, payload, 0, zlib.crc32(payload), len(payload), 0))
    return _raw_zip(raw)


def meta_bomb(n_mb):
    """meta.json of n_mb MiB (a JSON document padded with zero bytes), deflated."""
    raw = [m for m in _with_members([]) if m[0] != "meta.json"]
    data, crc = _deflated(b"{}", n_mb)
    return _raw_zip([("meta.json", data, 8, crc, 2 + (n_mb << 20), 0)] + raw)


def header_bomb():
    """A .npy header declaring 10**12 floats, its metadata listing the same."""
    members, meta = _open(_saved("BoostIn", "xgboost"))
    key = _node(meta, ("_denom",))["name"]
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10 ** 12,)})
    members[key + ".npy"] = np.lib.format.magic(1, 0) + buf.getvalue() + bytes(64)
    meta["arrays"][key] = {"dtype": "<f8", "shape": [10 ** 12], "sha256": "0" * 64}
    meta["sha256"] = _persist._meta_digest(meta)
    members["meta.json"] = json.dumps(meta).encode()
    return _zip(members)


def header_lies():
    """A .npy header declaring 10**12 floats under metadata listing the real shape."""
    members, meta = _open(_saved("BoostIn", "xgboost"))
    key = _node(meta, ("_denom",))["name"]
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10 ** 12,)})
    members[key + ".npy"] = np.lib.format.magic(1, 0) + buf.getvalue() + bytes(64)
    return _zip(members)


def deep_meta(depth):
    def edit(meta):
        node = 0
        for _ in range(depth):
            node = [node]
        _set_item(meta, ("_deep",), node)
    return edit_meta("BoostIn", "xgboost", edit)


def many_members(n):
    extra = [(f"x{i}", b"", 0, 0, 0, 0) for i in range(n)]
    return _raw_zip(_with_members(extra), zip64_count=True)


def odd_member(method, flags):
    members = _members(_saved("BoostIn", "xgboost"))
    raw = []
    for member, payload in members.items():
        if member == "a0.npy":
            raw.append((member, payload, method, zlib.crc32(payload), len(payload), flags))
        else:
            raw.append((member, payload, 0, zlib.crc32(payload), len(payload), 0))
    return _raw_zip(raw)


def lying_meta_size():
    """meta.json declaring 100 bytes whose deflate stream inflates to 1 MiB."""
    raw = [m for m in _with_members([]) if m[0] != "meta.json"]
    data, _ = _deflated(b"{", 1)
    return _raw_zip([("meta.json", data, 8, zlib.crc32(b"{" + bytes(99)), 100, 0)] + raw)


# ------------------------------------------------------------------- cases
def _build_cases():
    """{case name: (file bytes, regex the message must match)}."""
    root0, child, root1, leaf = _tree_nodes()
    F = "corrupted|not a treeinf"
    c = {
        # the trees: indices out of range, cycles, shared nodes, wrong leaves
        "child 10**8": (_ens("node_left", _put(root0, 10 ** 8)), "outside the node arrays"),
        "root 10**7": (_ens("tree_root", _put(1, 10 ** 7)), "tree_root"),
        "self-loop": (_ens("node_left", _put(child, child)), "reached twice"),
        "two-node cycle": (_ens("node_right", _put(child, root0)), "reached twice"),
        "node shared by two trees": (_ens("node_left", _put(root1, child)),
                                     "reached twice|belongs to no tree"),
        "negative child": (_ens("node_left", _put(root0, -5)), "leaf with a child"),
        "feature 999": (_ens("node_feature", _put(root0, 999)), "node_feature"),
        "truncated leaf values": (_ens("leaf_value", lambda a: a[:-1]), "leaf_value"),
        "garbage leaf id": (_ens("node_leaf", _put(leaf, 10 ** 6)), "leaf index"),
        "NaN leaf value": (_ens("leaf_value", _put(0, np.nan)), "non-finite"),
        "leaf offsets decreasing": (_ens("leaf_offset", lambda a: a[::-1].copy()),
                                    "leaf_offset"),
        "tree outputs swapped": (_ens("tree_output", lambda a: a[::-1].copy()),
                                 "tree_output"),
        "tree rounds skipping": (_ens("tree_round", lambda a: a * 2), "tree_round"),
        "2-D roots": (_ens("tree_root", lambda a: a.reshape(1, -1)),
                      "tree_root is not a 1-D array"),
        "float child pointers": (_ens("node_left", lambda a: a.astype(np.float64)),
                                 "node_left has dtype float64"),
        "int64 child pointers": (_ens("node_left", lambda a: a.astype(np.int64)),
                                 "node_left has dtype int64"),
        "category set outside bitset": (
            _ens_multi([("node_kind", _put(root0, 2)), ("node_cat_start", _put(root0, 10 ** 6)),
                        ("node_cat_len", _put(root0, 4))]), "bitset"),
        "split kind 7": (_ens("node_kind", _put(root0, 7)), "node_kind"),
        "base margin too long": (_ens("base_margin", lambda a: np.append(a, 0.0)),
                                 "9 trees and 4 outputs"),
        "encoder with 2 features": (edit_meta("BoostIn", "lightgbm", _encoder_features(2)),
                                    "node_feature|feature_names"),
        # BoostIn's fitted arrays
        "leaf ids all 255": (edit_array("BoostIn", "lightgbm", ("_leaves_T",),
                                        lambda a: np.full_like(a, 255)), "leaf indices"),
        "float leaf ids": (edit_array("BoostIn", "lightgbm", ("_leaves_T",),
                                      lambda a: a.astype(np.float64)), "dtype float64"),
        "1-D leaf ids": (edit_array("BoostIn", "lightgbm", ("_leaves_T",),
                                    lambda a: a.ravel()), "shape"),
        "truncated leaf denominators": (edit_array("BoostIn", "lightgbm", ("_denom",),
                                                   lambda a: a[:-1].copy()), "shape"),
        "infinite leaf denominator": (edit_array("BoostIn", "lightgbm", ("_denom",),
                                                 _put(0, np.inf)), "non-finite"),
        "label 7": (edit_array("BoostIn", "lightgbm", ("_y",), _put(0, 7.0)),
                    "class indices"),
        "leaf-group index 2**31": (add_array("BoostIn", "lightgbm", ("_idx",),
                                             np.full(10, 2 ** 31, dtype=np.uint32)),
                                   "no attribute"),
        "tile indices all 65535": (add_array("BoostIn", "lightgbm", ("_tile_idx",),
                                             np.full(10, 65535, dtype=np.uint16)),
                                   "no attribute"),
        "tile size 0": (edit_meta("BoostIn", "lightgbm", _set_value(("_tile",), 0)),
                        "no attribute"),
        "n_train 10**9": (edit_meta("BoostIn", "lightgbm", _set_value(("n_train_",), 10 ** 9)),
                          "shape"),
        "ensemble replaced by an int": (edit_meta("BoostIn", "lightgbm",
                                                  _set_value(("ensemble_",), 3)),
                                        "FlatEnsemble"),
        "leaf denominators missing": (edit_meta("BoostIn", "lightgbm", _drop(("_denom",))),
                                   "missing"),
        "variant bogus": (edit_meta("BoostIn", "lightgbm", _param("variant", "bogus")),
                          "parameters are invalid"),
        "n_jobs 0": (edit_meta("BoostIn", "lightgbm", _param("n_jobs", 0)),
                     "parameters are invalid"),
        # other estimators' indices
        "TopKLeaves index 2**31": (edit_array("LeafInfluence-top2", "lightgbm",
                                              ("_sparse_idx",), _put(0, 2 ** 31)),
                                   "indices"),
        "TopKLeaves pointers decreasing": (
            edit_array("LeafInfluence-top2", "lightgbm", ("_sparse_ptr",),
                       lambda a: a[::-1].copy()), "pointers"),
        "LeafRefit rounds short": (edit_array("LeafRefit", "lightgbm", ("_before",),
                                              lambda a: a[:-1].copy()), "_before.*shape"),
        "TREX entry column 10**6": (edit_array("TREX", "lightgbm", ("_entry_col",),
                                               _put(0, 10 ** 6)), "indices"),
        "TREX leaf matrix index 10**6": (_trex_leaf_matrix(), "indices"),
        "TreeSim leaf ids garbage": (edit_array("TreeSim", "xgboost", ("_leaves_T",),
                                                _put((0, 0), 200)), "leaf indices"),
        "InputSim short matrix": (edit_array("InputSim", "xgboost", ("_X",),
                                             lambda a: a[:, :-1].copy()), "shape"),
        "Target key missing": (edit_meta("Target", "xgboost", _drop(("_own_key",))),
                               "missing"),
        # size bombs and odd archives: refused before anything is inflated
        "npy header of 10**12 floats": (header_bomb(), "listed dtype.*take"),
        "npy header lies about its shape": (header_lies(),
                                            "listed dtype.*take|differ from the recorded|"
                                            "corrupted or truncated"),
        "3 GiB zero member deflated": (array_bomb(3072), "max_bytes"),
        "2 GiB member": (array_bomb(2048), "max_bytes"),
        "3 GiB meta.json": (meta_bomb(3072), "MAX_META_BYTES"),
        "meta.json lying about its size": (lying_meta_size(), F),
        "metadata nested 800 deep": (deep_meta(800), "MAX_DEPTH"),
        "70000 members": (many_members(70000), "MAX_MEMBERS"),
        "encrypted member": (odd_member(0, 1), "encrypted"),
        "bzip2 member": (odd_member(12, 0), "compression method"),
    }
    return c


def _ens_multi(edits, name="BoostIn", family="lightgbm"):
    members, meta = _open(_saved(name, family))
    for field, fn in edits:
        key = _node(meta, ("ensemble_", field))["name"]
        arr = np.lib.format.read_array(io.BytesIO(members[key + ".npy"])).copy()
        members[key + ".npy"] = _npy(fn(arr))
    return _rebuild(members, meta)


def _encoder_features(n):
    def edit(meta):
        enc = _node(meta, ("ensemble_", "encoder"))
        _set_item({"state": enc}, ("n_features",), n)
    return edit


def _drop(path):
    def edit(meta):
        node = meta["state"]
        for key in path[:-1]:
            node = _node({"state": node}, (key,))
        node["items"] = [kv for kv in node["items"] if kv[0] != path[-1]]
    return edit


def _trex_leaf_matrix():
    members, meta = _open(_saved("TREX", "lightgbm"))
    key = _node(meta, ("_L",))["indices"]["name"]
    arr = np.lib.format.read_array(io.BytesIO(members[key + ".npy"])).copy()
    arr[0] = 10 ** 6
    members[key + ".npy"] = _npy(arr)
    return _rebuild(members, meta)


_RUNNER = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    sys.path.insert(0, {root!r})
    import numpy as np
    import treeinf
    from treeinf.exceptions import PersistenceError
    X = np.zeros((2, 4))
    for path in sys.argv[1:]:
        print(json.dumps({{"start": path}}), flush=True)
        t = time.perf_counter()
        try:
            est = treeinf.load(path)
            out, msg = "loaded", ""
        except PersistenceError as exc:
            out, msg = "PersistenceError", str(exc)
        except BaseException as exc:
            out, msg = type(exc).__name__, str(exc)
        print(json.dumps({{"case": path, "outcome": out, "message": msg[:500],
                          "seconds": round(time.perf_counter() - t, 3)}}), flush=True)
""")


def _run_cases(cases, tmp_path):
    """{case: (outcome, message, seconds)} of loading each file in a
    memory-limited subprocess; fails on a crash with the case that was loading."""
    paths = {}
    for i, (name, (data, _)) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.treeinf"
        path.write_bytes(data)
        paths[str(path)] = name
    root = os.path.dirname(os.path.dirname(os.path.abspath(treeinf.__file__)))
    code = _RUNNER.format(limit=LIMIT_AS, root=root)
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True,
                          text=True, timeout=600)
    results, current = {}, None
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            current = paths[rec["start"]]
        else:
            results[paths[rec["case"]]] = (rec["outcome"], rec["message"], rec["seconds"])
            current = None
    assert proc.returncode == 0, (
        f"the loader process died (return code {proc.returncode}) while loading case "
        f"{current!r}:\n{proc.stderr[-3000:]}")
    return results


def _genuine():
    return {f"genuine {n}-{f}": (_saved(n, f), "") for n, f in [
        ("BoostIn", "lightgbm"), ("LeafInfluence-top2", "lightgbm"), ("TREX", "lightgbm"),
        ("LeafRefit", "lightgbm"), ("TreeSim", "xgboost"), ("InputSim", "xgboost")]}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Outcome of loading every hostile and genuine file, in one subprocess."""
    return _run_cases({**_cases(), **_genuine()}, tmp_path_factory.mktemp("hostile"))


def test_every_hostile_file_is_refused(loaded):
    cases = _cases()
    report = "\n".join(f"{name:40s} {loaded[name][0]:18s} {loaded[name][2]:7.3f}s"
                       for name in cases)
    print(report)
    failures = []
    for name, (_, pattern) in cases.items():
        outcome, message, _ = loaded[name]
        if outcome != "PersistenceError":
            failures.append(f"{name}: {outcome}: {message[:300]}")
        elif not re.search(pattern, message):
            failures.append(f"{name}: message does not match {pattern!r}: {message[:300]}")
    assert not failures, "\n".join(failures)


def test_every_genuine_file_still_loads(loaded):
    """The same subprocess and memory limit accept the unedited files."""
    outcomes = {name: loaded[name] for name in _genuine()}
    assert {r[0] for r in outcomes.values()} == {"loaded"}, outcomes


# ---------------------------------------------------- consistent value edits
def test_consistently_edited_leaf_values_need_the_model():
    """Leaf values scaled by 1e300, every checksum (and the fingerprint) kept
    consistent: the file is valid on its own, so only the model can tell."""
    model = _model("lightgbm")
    ref = _checks.model_fingerprint(_fitted("BoostIn", "lightgbm").ensemble_)
    data = _ens("leaf_value", lambda a: a * 1e300)
    members, meta = _open(data)
    meta["model"]["fingerprint"] = ref  # what an attacker would leave in place
    data = _rebuild(members, meta)
    loaded = treeinf.load(io.BytesIO(data))  # no model: cannot be detected
    assert np.abs(loaded.ensemble_.leaf_value).max() > 1e290
    with pytest.raises(ModelMismatchError, match="leaf_value differs"):
        treeinf.load(io.BytesIO(data), model=model)
    with pytest.raises(PersistenceError):
        treeinf.load(io.BytesIO(data), model=model)


def test_max_bytes_is_a_limit_the_user_sets():
    data = _saved("BoostIn", "xgboost")
    treeinf.load(io.BytesIO(data), max_bytes=1 << 20)
    with pytest.raises(PersistenceError, match="max_bytes limit of 0.0 MiB"):
        treeinf.load(io.BytesIO(data), max_bytes=100)
    with pytest.raises(PersistenceError, match="max_bytes must be"):
        treeinf.load(io.BytesIO(data), max_bytes=-1)


def test_tree_walk_against_a_plain_reference():
    """The numba tree check agrees with a plain recursive-free Python walk on
    random node arrays (valid trees, and the same with one pointer broken)."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n_leaves = int(rng.integers(1, 8))
        left, right, node_leaf = _random_tree(rng, n_leaves)
        if trial % 2:
            j = int(rng.integers(len(left)))
            (left if rng.random() < 0.5 else right)[j] = int(rng.integers(-2, len(left) + 1))
        ok = _plain_is_tree(left, right, node_leaf, n_leaves)
        seen_node = np.zeros(len(left), dtype=bool)
        seen_leaf = np.zeros(n_leaves, dtype=bool)
        code, _, _ = _checks.tree_walk_kernel(
            np.array(left, dtype=np.int32), np.array(right, dtype=np.int32),
            np.array(node_leaf, dtype=np.int32), np.zeros(1, dtype=np.int32),
            np.array([0, n_leaves], dtype=np.int64), seen_node, seen_leaf,
            np.empty(2 * len(left) + 2, dtype=np.int64))
        assert (code == 0 and seen_node.all() and seen_leaf.all()) == ok, trial


def _random_tree(rng, n_leaves):
    """Node arrays of a random binary tree (root 0) with n_leaves leaves."""
    left, right, leaf_of = [-1], [-1], [0]
    leaves = [0]
    while len(leaves) < n_leaves:
        node = leaves.pop(int(rng.integers(len(leaves))))
        a, b = len(left), len(left) + 1
        left[node], right[node] = a, b
        left += [-1, -1]
        right += [-1, -1]
        leaf_of += [0, 0]
        leaves += [a, b]
    node_leaf = [-1] * len(left)
    for k, node in enumerate(rng.permutation(leaves)):
        node_leaf[int(node)] = k
    return left, right, node_leaf


def _plain_is_tree(left, right, node_leaf, n_leaves):
    seen, leaves, todo = set(), set(), [0]
    while todo:
        node = todo.pop()
        if node in seen or not 0 <= node < len(left):
            return False
        seen.add(node)
        if left[node] == -1 and right[node] == -1:
            if not 0 <= node_leaf[node] < n_leaves or node_leaf[node] in leaves:
                return False
            leaves.add(node_leaf[node])
        elif left[node] >= 0 and right[node] >= 0 and node_leaf[node] == -1:
            todo += [left[node], right[node]]
        else:
            return False
    return len(seen) == len(left) and len(leaves) == n_leaves


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_every_parsed_model_passes_validation(task):
    """The checks accept every model kind treeinf parses (forests included):
    validation refuses hostile files, never genuine ones."""
    from models import FOREST_FAMILIES, GBDT_FAMILIES, trained
    for family in GBDT_FAMILIES + FOREST_FAMILIES:
        model, Xtr, *_ = trained(family, task, n=60, n_test=1, n_estimators=3)
        ens = treeinf.parse_model(model, Xtr)
        dims = {}
        _checks.check_ensemble(ens, dims)
        assert dims["T"] == ens.n_trees and dims["L"] == ens.leaf_offset[-1]


def test_a_new_ensemble_field_needs_a_spec(monkeypatch):
    """A FlatEnsemble field without a spec cannot be saved (it could not be
    checked on load); the message says where the one line goes."""
    monkeypatch.delitem(_checks.ENSEMBLE_FIELDS, "leaf_library_id")
    with pytest.raises(PersistenceError, match="leaf_library_id.*ENSEMBLE_FIELDS"):
        _fitted("BoostIn", "xgboost").save(io.BytesIO())


@pytest.mark.parametrize("name,family", [("BoostIn", "xgboost"), ("LeafInfluence-top2",
                                          "lightgbm"), ("TREX", "lightgbm"),
                                         ("TreeSim", "xgboost"), ("InputSim", "xgboost"),
                                         ("Target", "xgboost")])
def test_hostile_parameters_are_refused_or_valid(name, family):
    """Every parameter replaced by values of the wrong type or range: loading
    raises PersistenceError, or (a valid value) loads an explainer that works."""
    _, meta = _open(_saved(name, family))
    values = ["x", -1, 0, 10 ** 30, None, True, [1], {"type": "float", "value": "nan"},
              {"type": "float", "value": "inf"}, 1e-320]
    _, _, _, _, X, y = _data(family)
    for key, _ in meta["params"]["items"]:
        for value in values:
            data = edit_meta(name, family, _param(key, value))
            try:
                est = treeinf.load(io.BytesIO(data))
            except PersistenceError:
                continue
            assert est.get_local_influence(X, y).shape[1] == len(y)
