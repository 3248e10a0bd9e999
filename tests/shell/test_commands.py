"""Commands driven through the real cmd2 app."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLE_MODEL
from tests.helpers_models import tiny_conv_model, unsupported_model


def test_open_and_show_sample_totals(shell) -> None:  # noqa: ANN001
    ok, out, err = shell.run(f"open {SAMPLE_MODEL}")
    assert ok, err
    assert "cifar_net" in shell.app.prompt
    ok, out, err = shell.run("show --json")
    assert ok, err
    doc = json.loads(out)
    macs = {
        r["name"]: r["macs"] for r in doc["layers"] if r["macs"] and r["op"] in ("Conv", "Gemm")
    }
    assert macs == {
        "_conv1_Conv": 352_800,
        "_conv2_Conv": 240_000,
        "_fc1_Gemm": 48_000,
        "_fc2_Gemm": 10_080,
        "_fc3_Gemm": 840,
    }
    assert sum(macs.values()) == 651_720
    assert doc["totals"]["params"] == 62_006
    assert doc["totals"]["param_bytes"] == 62_006 * 4
    shapes = {r["name"]: r["out_dims"][0] for r in doc["layers"]}
    assert shapes["_conv1_Conv"] == [6, 28, 28]
    assert shapes["_pool_MaxPool"] == [6, 14, 14]
    assert shapes["_conv2_Conv"] == [16, 10, 10]
    assert shapes["_fc1_Gemm"] == [120]
    assert shapes["_fc3_Gemm"] == [10]


def test_show_table_renders_totals(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    ok, out, _ = shell.run("show")
    assert ok
    assert "62,006" in out and "651,720" in out
    assert "_conv1_Conv" in out and "3x32x32" in out


def test_show_selectors(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    ok, out, _ = shell.run("show _fc* --json")
    assert ok
    names = [r["name"] for r in json.loads(out)["layers"]]
    assert names == ["_fc1_Gemm", "_fc2_Gemm", "_fc3_Gemm"]
    ok, out, _ = shell.run("show 0:2 --json")
    assert [r["step"] for r in json.loads(out)["layers"]] == [0, 1, 2]
    ok, out, _ = shell.run("show -1 --json")
    assert [r["name"] for r in json.loads(out)["layers"]] == ["_fc3_Gemm"]
    ok, _, err = shell.run("show _nope")
    assert not ok and err.count("error:") == 1 and "_nope" in err


def test_open_errors_leave_previous_graph(shell, tmp_path: Path) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    before = shell.app.session.graph
    bad_text = tmp_path / "x.onnx"
    bad_text.write_text("this is not a model\n")
    cases = [
        (str(tmp_path / "missing.onnx"), "not found"),
        (str(bad_text), "not a readable ONNX model"),
        (str(unsupported_model(tmp_path / "u.onnx")), "Celu (_act_Celu); Erf (_act_Erf)"),
    ]
    for path, expected in cases:
        ok, out, err = shell.run(f"open {path}")
        assert not ok
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        assert expected in lines[0]
        assert "Traceback" not in err
        assert shell.app.session.graph is before
        assert "cifar_net" in shell.app.prompt


def test_commands_without_graph(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run("show")
    assert not ok
    assert err.strip() == "error: no graph open [hint: open <model.onnx>]"


def test_unknown_command_and_bad_option(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run("shwo")
    assert not ok and "unknown command 'shwo'" in err and "show" in err
    ok, _, err = shell.run("show --nope")
    assert not ok and "unrecognized arguments: --nope" in err


def test_set_settings(shell) -> None:  # noqa: ANN001
    ok, out, _ = shell.run('set input_norm_func "x: x/128-1"')
    assert ok and "x: x/128-1" in out
    assert shell.app.session.settings["input_norm_func"] == "x: x/128-1"
    ok, _, err = shell.run("set input_norm_fun x")
    assert not ok and "did you mean input_norm_func" in err
    ok, _, err = shell.run("set input_transpose maybe")
    assert not ok and "not a valid bool" in err
    ok, _, _ = shell.run("set debug true")
    assert ok and shell.app.debug is True
    ok, out, _ = shell.run("set")
    assert ok and "input_norm_func" in out and "debug" in out


def test_set_rejects_unsafe_expression(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run("set input_norm_func \"__import__('os').system('echo hi')\"")
    assert not ok and err.startswith("error:")
    assert shell.app.session.settings["input_norm_func"] is None


def _nnshell_commands(app) -> list[str]:  # noqa: ANN001
    """Every command nnshell itself defines (its do_* methods), read from the running app, so
    a new command is covered without editing this list."""
    out = []
    for name in app.get_all_commands():
        func = getattr(app, f"do_{name}", None)
        if func is not None and getattr(func, "__module__", "").startswith("nnshell."):
            out.append(name)
    return sorted(out)


def test_help_for_every_command(shell) -> None:  # noqa: ANN001
    commands = _nnshell_commands(shell.app)
    # NNTool's core commands are among them, and the enumeration sees the command sets
    assert {"open", "show", "adjust", "fusions", "aquant", "qshow", "save_state", "gen"} <= set(
        commands
    )
    assert len(commands) >= 17, commands
    for cmd in [*commands, "history"]:
        ok, out, err = shell.run(f"help {cmd}")
        assert ok, (cmd, err)
        usage = next((ln for ln in out.splitlines() if ln.lower().startswith("usage")), "")
        assert f" {cmd}" in usage, (cmd, out[:300])


def test_every_command_without_a_graph_fails_cleanly_or_works(shell) -> None:  # noqa: ANN001
    """Out of order (nothing open): each command works (set, imageformat listing...) or says so
    in one error line — never a traceback or an internal error."""
    for cmd in _nnshell_commands(shell.app):
        if cmd in ("quit", "exit"):
            continue
        ok, out, err = shell.run(cmd)
        assert "Traceback" not in out + err and "internal error" not in err, (cmd, err)
        if not ok:
            errors = [ln for ln in err.splitlines() if "error:" in ln]
            assert len(errors) == 1, (cmd, err)


def test_open_other_model_changes_prompt(shell, tmp_path: Path) -> None:  # noqa: ANN001
    path = tiny_conv_model(tmp_path / "tiny.onnx")
    assert shell.run(f"open {path}")[0]
    assert shell.app.prompt == "nnshell (tiny) > "


def test_internal_error_is_reported_and_session_survives(shell, monkeypatch) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")

    def boom(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("synthetic")

    monkeypatch.setattr(shell.app.session, "layers", boom)
    ok, _, err = shell.run("show")
    assert not ok
    assert "internal error while running 'show'" in err and "Traceback" not in err
    monkeypatch.undo()
    assert shell.run("show")[0]
