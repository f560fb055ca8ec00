"""Packages that cannot lie (issue 35): the manifest covers every file and the metadata, links and added
files are refused, metadata values are checked with named errors, a signing key makes a signature
required, and ``pcbm verify`` says what is wrong."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from pcbm.errors import InputError


@pytest.fixture()
def pkg(tiny_package, tmp_path):
    out = tmp_path / "pkg"
    shutil.copytree(tiny_package, out)
    return out


def _meta(p):
    return json.loads((p / "metadata.json").read_text())


def _rewrite_meta(p, change) -> None:
    meta = _meta(p)
    change(meta)
    (p / "metadata.json").write_text(json.dumps(meta))


def _problems(p, **kw) -> list[str]:
    from pcbm.runtime.verify import verify_package

    return verify_package(p, **kw)[1]


def test_an_exported_package_verifies_and_serves_the_digest_of_its_manifest(pkg) -> None:
    from pcbm.layout import MANIFEST
    from pcbm.runtime import Engine
    from pcbm.runtime.verify import package_digest

    assert _problems(pkg) == []
    listed = {line.split("  ")[1] for line in (pkg / MANIFEST).read_text().splitlines()}
    assert listed == {p.name for p in pkg.iterdir()} - {MANIFEST} and "metadata.json" in listed
    e = Engine(pkg, threads=1)
    assert e.identity["package_sha256"] == package_digest(pkg) and len(e.identity["sha256"]) == 64


@pytest.mark.parametrize("attack", ["drop_entry", "drop_list", "edit_graph", "add_file", "graph_outside",
                                    "reliability_null", "absurd_confidence", "link", "edit_manifest_line"])
def test_a_tampered_package_never_loads(pkg, tmp_path, attack) -> None:
    from pcbm.runtime import Engine

    if attack == "drop_entry":
        _rewrite_meta(pkg, lambda m: m["files"].pop("segment.onnx"))
    elif attack == "drop_list":
        _rewrite_meta(pkg, lambda m: m.pop("files"))
    elif attack == "edit_graph":
        with open(pkg / "decision.onnx", "ab") as f:
            f.write(b"\0")
    elif attack == "add_file":
        (pkg / "evil.onnx").write_bytes(b"x")
    elif attack == "graph_outside":
        (tmp_path / "outside.onnx").write_bytes((pkg / "decision.onnx").read_bytes())
        _rewrite_meta(pkg, lambda m: m["graphs"].update(decision="../outside.onnx"))
    elif attack == "reliability_null":
        _rewrite_meta(pkg, lambda m: m.update(reliability=None))
    elif attack == "absurd_confidence":
        _rewrite_meta(pkg, lambda m: m["thresholds"].update(min_confidence=7.0))
    elif attack == "link":
        os.symlink(pkg / "decision.onnx", pkg / "decision2.onnx")
    elif attack == "edit_manifest_line":
        from pcbm.layout import MANIFEST

        (pkg / MANIFEST).write_text((pkg / MANIFEST).read_text().replace("decision.onnx", "../decision.onnx"))
    assert _problems(pkg), attack
    with pytest.raises(InputError, match="fails verification"):
        Engine(pkg, threads=1)


def test_every_bad_metadata_value_is_named_even_without_hashes() -> None:
    from pcbm.runtime.verify import check_metadata

    files = {"segment.onnx": "0" * 64, "properties.onnx": "0" * 64, "decision.onnx": "0" * 64}
    bad = {"ontology": {}, "model": {"name": ""}, "input": {"size": "256"}, "thresholds": {"min_confidence": float("nan")},
           "graphs": {"segment": "/etc/passwd", "properties": "properties.onnx", "decision": "decision.onnx"},
           "head_refiner": {"file": "head_refiner.onnx", "size": 224, "margin": 99, "flip_tta": "yes"}}
    text = " | ".join(check_metadata(bad, files))
    for needle in ("another ontology", "model.name", "input.size", "min_confidence", "segment must be a plain file name",
                   "head_refiner.margin", "flip_tta", "head_refiner names head_refiner.onnx"):
        assert needle in text, needle
    assert check_metadata([], files) == ["metadata.json is not a JSON object"]


def test_a_signing_key_makes_the_signature_required(pkg, monkeypatch) -> None:
    from pcbm.runtime import Engine
    from pcbm.runtime.verify import KEY_ENV, write_manifest

    monkeypatch.setenv(KEY_ENV, "site-secret")
    assert any("unsigned" in p for p in _problems(pkg))  # exported without the key
    write_manifest(pkg)  # signed now (what export does with the key set)
    assert _problems(pkg) == []
    Engine(pkg, threads=1)
    assert any("does not match" in p for p in _problems(pkg, key="another-key"))
    _rewrite_meta(pkg, lambda m: m["thresholds"].update(min_confidence=0.9))
    write_manifest(pkg, key="attacker-key")  # a rewritten manifest without the site's key
    assert any("does not match" in p for p in _problems(pkg))


def test_pcbm_verify_reports_each_problem_and_exits_1(pkg, capsys) -> None:
    from pcbm.cli import main

    def run(argv):
        try:
            main(argv)
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    assert run(["verify", str(pkg)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    (pkg / "evil.onnx").write_bytes(b"x")
    with open(pkg / "decision.onnx", "ab") as f:
        f.write(b"\0")
    assert run(["verify", str(pkg)]) == 1
    err = capsys.readouterr().err
    assert "evil.onnx: not in package.sha256" in err and "decision.onnx: altered" in err and "Traceback" not in err
    assert run(["verify", str(pkg.parent / "nowhere")]) == 2


def test_export_never_touches_what_is_beside_its_output(tiny_package, tmp_path) -> None:
    from pcbm.export.package import export_package

    out = tmp_path / "X"
    for sibling in ("X.partial", "X.old"):
        (tmp_path / sibling).mkdir()
        (tmp_path / sibling / "mine.txt").write_text("user data")
    export_package(str(tiny_package.parent / "run"), out, reference=("phantom:n=2,seed=2",), reference_limit=2)
    export_package(str(tiny_package.parent / "run"), out, overwrite=True, reference=("phantom:n=2,seed=2",),
                   reference_limit=2)
    assert (tmp_path / "X.partial" / "mine.txt").read_text() == "user data"
    assert (tmp_path / "X.old" / "mine.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X", "X.old", "X.partial"]  # no staging left
    assert _problems(out) == []
    with pytest.raises(InputError, match="exists"):
        export_package(str(tiny_package.parent / "run"), out)
    with pytest.raises(InputError):
        export_package(str(tiny_package.parent / "run"), tmp_path / "Y", reference=("nosuchkind:x",))
    assert not (tmp_path / "Y").exists()
