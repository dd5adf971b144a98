"""ONNX export (`lstmlab.export`): parity with PyTorch in ONNX Runtime for every inference
option of `lstmlab.LSTM` (lengths 1, the exported one and 4x it, other batch sizes), the
gate-order conversion to the native LSTM op, the trace outputs, the recipes' graphs, the
`lstmlab export` command, the torch-free LM driver, and the refusal messages."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import lstmlab
from lstmlab.cli import main
from lstmlab.export import (
    TOLERANCE, NotAnExport, check_onnx, max_abs_error, to_onnx, to_onnx_gate_order, to_onnx_peephole_order,
)
from lstmlab.export.recipes import model_graphs
from lstmlab.models.acoustic import AcousticModel, AcousticModelConfig
from lstmlab.models.lm import LanguageModel, LMModelConfig
from lstmlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
from lstmlab.runs import Run

pytestmark = pytest.mark.usefixtures("single_thread")  # small graphs: see conftest

LENGTH = 4  # the exported (nominal) length: the check runs 1, 4 and 16 steps
CONFIGS = {  # name -> (lstmlab.LSTM options, the ONNX op that carries the recurrence without the trace)
    "plain": ({}, "LSTM"),
    "peephole": ({"peephole": True}, "LSTM"),
    "coupled": ({"coupled": True}, "LSTM"),
    "coupled_peephole": ({"coupled": True, "peephole": True}, "LSTM"),
    "no_bias": ({"bias": False}, "LSTM"),
    "layer_norm": ({"layer_norm": True}, "Scan"),
    "layer_norm_coupled": ({"layer_norm": True, "coupled": True}, "Scan"),
    "proj_size": ({"proj_size": 3}, "Scan"),
    "zoneout": ({"zoneout": (0.2, 0.35)}, "Scan"),
    "two_layers_bidirectional": ({"num_layers": 2, "bidirectional": True}, "LSTM"),
    "bidirectional_peephole": ({"bidirectional": True, "peephole": True}, "LSTM"),
    "batch_first_bidirectional_proj": ({"batch_first": True, "bidirectional": True, "proj_size": 3,
                                        "num_layers": 2}, "Scan"),
    "everything": ({"num_layers": 2, "bidirectional": True, "peephole": True, "layer_norm": True,
                    "proj_size": 4, "zoneout": 0.1, "batch_first": True, "weight_drop": 0.3}, "Scan"),
}


def make_lstm(options: dict) -> lstmlab.LSTM:
    """A small LSTM with every variant parameter away from its initial value (so a wrong
    mapping of peepholes or LN gains shows), in eval mode."""
    options = dict(options)
    layers = options.pop("num_layers", 1)
    lstm = lstmlab.LSTM(5, 6, layers, **options)
    with torch.no_grad():
        for name, parameter in lstm.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return lstm.eval()


def ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def assert_checked(report, lengths=(1, LENGTH, 4 * LENGTH), batches=(1, 3)):
    assert report.passed and report.max_error <= TOLERANCE, str(report)
    assert {(b, t) for b, t, _ in report.rows} == {(b, t) for b in batches for t in lengths}


# ------------------------------------------------------------------------- lstmlab.LSTM
@pytest.mark.parametrize("trace", [False, True], ids=["outputs", "trace"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_option_matches_pytorch_in_onnx_runtime(name, trace, tmp_path):
    options, op = CONFIGS[name]
    lstm = make_lstm(options)
    path = to_onnx(lstm, tmp_path / "lstm.onnx", trace=trace, length=LENGTH)
    assert (op if not trace else "Scan") in ops(path)
    report = check_onnx(path, lstm)
    assert_checked(report)
    assert ("trace" in report.rows[0][2]) == trace and report.group_error("states") <= TOLERANCE


@pytest.mark.parametrize("options", [{}, {"bidirectional": True, "layer_norm": True},
                                     {"batch_first": True, "bidirectional": True, "proj_size": 2, "zoneout": 0.1}],
                         ids=["plain", "bidirectional_ln", "batch_first_proj_zoneout"])
def test_lengths_input_has_packed_sequence_semantics(options, tmp_path):
    lstm = make_lstm(options)
    path = to_onnx(lstm, tmp_path / "packed.onnx", lengths=True, trace=True, length=5)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["x", "h_0", "c_0", "lengths"]
    assert_checked(check_onnx(path, lstm, batch_sizes=(2, 4)), lengths=(1, 5, 20), batches=(2, 4))


@pytest.mark.parametrize("options", [{}, {"peephole": True, "coupled": True}, {"layer_norm": True, "zoneout": 0.2}],
                         ids=["plain", "peephole_coupled", "layer_norm_zoneout"])
def test_lstm_cell_exports_as_one_step(options, tmp_path):
    cell = lstmlab.LSTMCell(5, 16, **options).eval()
    with torch.no_grad():
        for name, parameter in cell.named_parameters():
            if name.startswith(("weight_peephole", "ln_")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    path = to_onnx(cell, tmp_path / "cell.onnx", trace=True)
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["h_1", "c_1", "trace_i", "trace_f", "trace_g",
                                                                     "trace_o"]
    assert_checked(check_onnx(path, cell), lengths=(1, 8, 32))  # 1, 8 and 32 chained steps


@pytest.mark.parametrize("name", ["plain", "peephole", "coupled_peephole", "two_layers_bidirectional"])
def test_the_scan_form_agrees_too_where_the_lstm_op_is_used(name, tmp_path):
    lstm = make_lstm(CONFIGS[name][0])
    path = to_onnx(lstm, tmp_path / "scan.onnx", form="scan", length=LENGTH)
    assert "Scan" in ops(path) and "LSTM" not in ops(path)
    assert_checked(check_onnx(path, lstm))


def test_forcing_the_lstm_op_on_what_it_cannot_express_is_refused(tmp_path):
    with pytest.raises(ValueError, match="native ONNX LSTM op cannot express.*layer_norm"):
        to_onnx(make_lstm({"layer_norm": True}), tmp_path / "x.onnx", form="lstm_op")
    with pytest.raises(ValueError, match="form: expected one of"):
        to_onnx(make_lstm({}), tmp_path / "x.onnx", form="loop")


GREFF_PARTS = [part for part in ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")
               if part in {field.name for field in dataclasses.fields(lstmlab.CellSpec)}]


@pytest.mark.skipif(not GREFF_PARTS, reason="this lstmlab has no removed-part (Greff) variants")
@pytest.mark.parametrize("part", GREFF_PARTS or ["none"])
def test_greff_variants_export_as_scan(part, tmp_path):
    lstm = make_lstm({part: False, "bidirectional": True, "peephole": True})
    path = to_onnx(lstm, tmp_path / "greff.onnx", trace=True, length=LENGTH)
    assert_checked(check_onnx(path, lstm))
    assert "LSTM" not in ops(to_onnx(lstm, tmp_path / "plain.onnx"))  # the native op has no such variant
    cell = lstmlab.LSTMCell(5, 6, **{part: False}).eval()
    assert check_onnx(to_onnx(cell, tmp_path / "cell.onnx", trace=True), cell).passed


def test_a_cell_option_the_exporter_does_not_know_is_refused(tmp_path):
    """A new CellSpec option must not be dropped silently from the graph."""
    @dataclasses.dataclass(frozen=True)
    class FutureSpec(lstmlab.CellSpec):
        new_option: bool = False

    lstm = make_lstm({})
    lstm.spec = FutureSpec(new_option=True)
    with pytest.raises(ValueError, match="new_option=True: lstmlab.export does not write this cell option"):
        to_onnx(lstm, tmp_path / "x.onnx")


def test_gate_order_conversion_to_the_native_op():
    H = 2
    rows = np.arange(4 * H)[:, None]  # lstmlab rows i0 i1 f0 f1 g0 g1 o0 o1
    assert to_onnx_gate_order(rows, H)[:, 0].tolist() == [0, 1, 6, 7, 2, 3, 4, 5]  # ONNX: i, o, f, c
    assert to_onnx_peephole_order(np.arange(3 * H), H).tolist() == [0, 1, 4, 5, 2, 3]  # p_i, p_o, p_f


def test_coupled_native_op_ignores_the_forget_rows(tmp_path):
    """ONNX's input_forget=1 computes f = 1 - i, as lstmlab's coupled cell: the f rows of
    the weights are unused, so filling them with noise must not change the numbers."""
    lstm = make_lstm({"coupled": True, "peephole": True})
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(lstm, name)[6:12] = torch.randn_like(getattr(lstm, name)[6:12]) * 3
        lstm.weight_peephole_l0[6:12] = 5.0  # p_f: unused with coupled gates
    path = to_onnx(lstm, tmp_path / "coupled.onnx")
    node = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "LSTM")
    assert {a.name: a.i for a in node.attribute}["input_forget"] == 1
    assert check_onnx(path, lstm).passed


def test_trace_outputs_are_named_and_shaped_as_the_trace(tmp_path):
    lstm = make_lstm({"num_layers": 2, "bidirectional": True, "proj_size": 3, "batch_first": True})
    path = to_onnx(lstm, tmp_path / "traced.onnx", trace=True)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 7, 5), dtype=np.float32)
    h0, c0 = np.zeros((4, 2, 3), np.float32), np.zeros((4, 2, 6), np.float32)
    names = [o.name for o in session.get_outputs()]
    assert names[:3] == ["y", "h_n", "c_n"]
    assert names[3:] == [f"trace_l{k}_{f}" for k in range(2) for f in lstmlab.cell.TRACE_FIELDS]
    got = dict(zip(names, session.run(None, {"x": x, "h_0": h0, "c_0": c0})))
    _, _, trace = lstm(torch.from_numpy(x), trace=True)
    for k in range(2):
        for field in lstmlab.cell.TRACE_FIELDS:
            expected = trace[k][field].detach().numpy()  # (B, T, D, H), h with P features
            assert got[f"trace_l{k}_{field}"].shape == expected.shape
            assert max_abs_error(got[f"trace_l{k}_{field}"], expected) <= TOLERANCE
    description = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["lstmlab.export"])
    assert description["kind"] == "lstm" and description["module"]["recurrence"] == "Scan"
    assert [o["group"] for o in description["outputs"]][:3] == ["outputs", "states", "states"]


def test_the_exported_graph_is_deterministic(tmp_path):
    lstm = make_lstm({"layer_norm": True})
    first = to_onnx(lstm, tmp_path / "a.onnx").read_bytes()
    assert first == to_onnx(lstm, tmp_path / "b.onnx").read_bytes()


# ------------------------------------------------------------------------- refusals
def test_check_refuses_a_file_that_is_not_an_lstmlab_export(tmp_path):
    lstm = make_lstm({})
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, producer_name="pytorch"), str(foreign))
    with pytest.raises(NotAnExport, match="not an lstmlab export.*'pytorch'"):
        check_onnx(foreign, lstm)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx at all" * 10)
    with pytest.raises(ValueError, match="not an|not an ONNX model"):
        check_onnx(garbage, lstm)
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        check_onnx(tmp_path / "missing.onnx", lstm)


def test_options_that_cannot_be_exported_say_which_and_why(tmp_path):
    with pytest.raises(ValueError, match="dtype: expected float32.*float64"):
        to_onnx(lstmlab.LSTM(3, 4).double(), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="expected an lstmlab.LSTM, LSTMCell or a recipe model.*GRU"):
        to_onnx(torch.nn.GRU(3, 4), tmp_path / "x")
    gru_lm = LanguageModel(LMModelConfig(cell="gru", hidden_size=8, num_layers=1, embedding_size=4), 7)
    with pytest.raises(ValueError, match="lm: ONNX export covers models on lstmlab.LSTM; this one runs GRU"):
        to_onnx(gru_lm, tmp_path / "gru")
    lstm = make_lstm({})
    path = to_onnx(lstm, tmp_path / "lstm.onnx")
    with pytest.raises(ValueError, match="reference: expected an lstmlab.LSTM, LSTMCell or an ExportSpec"):
        check_onnx(path, "not a module")
    from lstmlab import recipes

    with pytest.raises(ValueError, match="recipe 'longlag' has no ONNX export"):
        recipes.get("longlag").onnx_graphs(None)


def test_a_check_that_fails_says_so(tmp_path):
    lstm = make_lstm({})
    path = to_onnx(lstm, tmp_path / "lstm.onnx")
    with torch.no_grad():
        lstm.weight_hh_l0.add_(0.1)  # the module changed after export
    report = check_onnx(path, lstm)
    assert not report.passed and "FAILED" in report.summary()


# ------------------------------------------------------------------------- recipe graphs
def tiny_seq2seq(**options) -> Seq2Seq:
    sizes = {"embedding_size": 8, "encoder_hidden": 6, "decoder_hidden": 10, "decoder_layers": 2}
    config = Seq2SeqConfig(**{**sizes, **options})
    return Seq2Seq(config, vocab_size=17, pad_id=0).eval()


RECIPE_MODELS = {
    "lm": lambda: LanguageModel(LMModelConfig(hidden_size=12, num_layers=2, embedding_size=8, projection_size=6), 11),
    "lm_variants_tied": lambda: LanguageModel(LMModelConfig(hidden_size=12, num_layers=1, embedding_size=8,
                                                            layer_norm=True, peephole=True, projection_size=8,
                                                            tie_weights=True), 11),
    "translation_general": lambda: tiny_seq2seq(),
    "translation_dot_feeding_reversed": lambda: tiny_seq2seq(attention="dot", decoder_hidden=12, input_feeding=True,
                                                             reverse_source=True),
    "translation_concat_variants": lambda: tiny_seq2seq(attention="concat", encoder_variants="layer_norm",
                                                        decoder_variants="peephole,coupled"),
    "translation_none_unidirectional": lambda: tiny_seq2seq(attention="none", bidirectional=False),
    "speech_bidirectional_proj": lambda: AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=2, proj_size=4,
                                                                           stack=3), 5, 7),
    "speech_bidirectional_layer_norm": lambda: AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=2, stack=3,
                                                                                 variants="layer_norm"), 5, 7),
    "speech_streaming": lambda: AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=2, bidirectional=False,
                                                                  normalization="global", stack=2,
                                                                  variants="layer_norm"), 5, 7),
}
EXPECTED_GRAPHS = {"lm": {"lm_step"}, "translation": {"encoder", "decoder_step"},
                   "speech": {"acoustic"}, "speech_streaming": {"acoustic", "acoustic_step"}}


@pytest.mark.parametrize("name", list(RECIPE_MODELS))
def test_recipe_graphs_match_the_model(name, tmp_path):
    model = RECIPE_MODELS[name]().eval()
    if isinstance(model, AcousticModel):
        model.set_statistics(torch.randn(5) - 4, torch.rand(5) + 0.5)
    written = to_onnx(model, tmp_path)
    kind = "speech_streaming" if name == "speech_streaming" else name.split("_")[0]
    assert set(written) == EXPECTED_GRAPHS[kind]
    specs = model_graphs(model)
    for graph_name, path in written.items():
        report = check_onnx(path, specs[graph_name])
        assert report.passed, str(report)
        assert {t for _, t, _ in report.rows} == {1, 8, 32} or graph_name == "acoustic"


def test_recipe_hooks_return_the_graphs():
    from lstmlab import recipes

    model = RECIPE_MODELS["translation_general"]()
    specs = recipes.get("translation").onnx_graphs(Run("translation", model, None, Path("run.pt")))
    assert set(specs) == {"encoder", "decoder_step"}
    speech = RECIPE_MODELS["speech_streaming"]().eval()
    assert set(recipes.get("speech").onnx_graphs(Run("speech", speech, None, Path("run.pt")))) == \
        {"acoustic", "acoustic_step"}


@pytest.mark.parametrize("feeding", [False, True], ids=["plain", "input_feeding"])
def test_translation_greedy_driver_gives_the_models_tokens(feeding, tmp_path):
    """The documented driver: the encoder once, then decoder_step per token (argmax fed back)."""
    import onnxruntime

    model = tiny_seq2seq(input_feeding=feeding)
    written = to_onnx(model, tmp_path)
    encoder, decoder = (onnxruntime.InferenceSession(str(written[n]), providers=["CPUExecutionProvider"])
                        for n in ("encoder", "decoder_step"))
    source = torch.tensor([[3, 5, 7, 2], [4, 6, 0, 0]])
    lengths = torch.tensor([4, 2])
    with torch.no_grad():
        memory = model.encode(source, lengths)
        state, token, expected = model.initial_state(memory), torch.tensor([1, 1]), []
        for _ in range(6):
            log_probs, _, state = model.step(memory, token, state)
            token = log_probs.argmax(-1)
            expected.append(token.tolist())
    values, keys, mask, h, c = encoder.run(None, {"source": source.numpy(), "lengths": lengths.numpy()})
    feeds = {"memory_values": values, "memory_keys": keys, "memory_mask": mask, "h": h, "c": c}
    if feeding:
        feeds["feed"] = np.zeros((2, 8), np.float32)
    token, got = np.array([1, 1]), []
    names = [o.name for o in decoder.get_outputs()]
    for _ in range(6):
        out = dict(zip(names, decoder.run(None, {**feeds, "token": token})))
        token = out["log_probs"].argmax(-1)
        got.append(token.tolist())
        feeds.update(h=out["h_n"], c=out["c_n"], **({"feed": out["feed_out"]} if feeding else {}))
    assert got == expected
    assert max_abs_error(out["log_probs"], log_probs.numpy()) <= TOLERANCE


def test_streaming_step_graph_chained_equals_the_whole_utterance_graph(tmp_path):
    """The documented driver: one acoustic_step per stack of k frames, the last stack padded
    with the description's pad_frame, gives the whole-utterance log-probs."""
    import onnxruntime

    model = RECIPE_MODELS["speech_streaming"]().eval()
    model.set_statistics(torch.randn(5) - 4, torch.rand(5) + 0.5)
    written = to_onnx(model, tmp_path)
    whole = onnxruntime.InferenceSession(str(written["acoustic"]), providers=["CPUExecutionProvider"])
    step = onnxruntime.InferenceSession(str(written["acoustic_step"]), providers=["CPUExecutionProvider"])
    description = json.loads({p.key: p.value for p in onnx.load(str(written["acoustic_step"])).metadata_props}
                             ["lstmlab.export"])
    features = np.random.default_rng(1).standard_normal((1, 7, 5), dtype=np.float32) - 4
    expected = whole.run(["log_probs"], {"features": features, "lengths": np.array([7])})[0][0]  # (4, V)
    k = description["stack"]
    padded = np.concatenate([features[0], np.array([description["pad_frame"]], np.float32)])  # 8 frames
    h, c = np.zeros((2, 1, 8), np.float32), np.zeros((2, 1, 8), np.float32)
    for t in range(4):
        log_probs, h, c = step.run(None, {"frames": padded[None, t * k:(t + 1) * k], "h": h, "c": c})
        assert max_abs_error(log_probs[0], expected[t]) <= TOLERANCE


# ------------------------------------------------------------------------- CLI and deploy
@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export_lm")
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in mind".split()
    corpus = folder / "words.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(300)))
    out = folder / "run"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--hidden_size", "16", "--num_layers", "2",
                 "--embedding_size", "8", "--batch_size", "4", "--bptt", "10", "--max_steps", "2",
                 "--eval_interval", "2", "--progress", "false"]) == 0
    return out


def test_export_command_writes_checks_and_prints_the_errors(lm_run, capsys):
    capsys.readouterr()
    assert main(["export", str(lm_run), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "lm_step.onnx" in printed and "max abs error outputs" in printed and ": ok" in printed
    folder = lm_run / "onnx"
    for name in ("lm_step.onnx", "tokenizer.json", "deploy.py", "export.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "export.json").read_text())["graphs"] == {"lm_step": "lm_step.onnx"}
    assert main(["export", str(lm_run), "--out", str(lm_run / "elsewhere"), "--no-check"]) == 0
    assert "not checked" in capsys.readouterr().out and (lm_run / "elsewhere" / "lm_step.onnx").is_file()


def test_export_command_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no-such-run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("lstmlab export: error:") and "\n" not in error


def test_deploy_generates_the_greedy_text_of_lstmlab_generate_without_torch(lm_run, capsys):
    from lstmlab.deploy import Generator
    from lstmlab.recipes.lm.generation import generate

    main(["export", str(lm_run), "--no-check"])
    run = lstmlab.load(lm_run)
    expected = generate(run.model, run.tokenizer, "to be", 30, temperature=0.0)
    assert Generator(lm_run / "onnx").generate("to be", 30, temperature=0.0) == expected
    sampled = Generator(lm_run / "onnx").generate("to be", 30, temperature=0.8, top_k=5, seed=3)
    assert len(sampled) == 30 and sampled == Generator(lm_run / "onnx").generate("to be", 30, 0.8, 5, seed=3)
    # the copy in the export folder runs with torch (and lstmlab) made unimportable
    script = ("import sys; sys.modules['torch'] = None; sys.modules['lstmlab'] = None; "
              f"sys.argv = ['deploy.py', {str(lm_run / 'onnx')!r}, '--prime', 'to be', '--length', '30', "
              "'--temperature', '0']; "
              f"exec(compile(open({str(lm_run / 'onnx' / 'deploy.py')!r}).read(), 'deploy.py', 'exec'))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "to be" + expected + "\n"


def test_export_command_on_tiny_translation_and_speech_runs(tmp_path, capsys):
    """Trained runs of the other recipes (a few steps) export and pass the check from the CLI."""
    import shutil

    pairs = [("the cat sleeps", "el gato duerme"), ("a dog runs", "un perro corre"), ("the bird sings", "el pájaro canta"),
             ("a cat eats", "un gato come")] * 18
    (tmp_path / "pairs.tsv").write_text("".join(f"{e}\t{s}\n" for e, s in pairs), encoding="utf-8")
    translation = tmp_path / "translation"
    assert main(["train", "translation", "--data", str(tmp_path / "pairs.tsv"), "--out", str(translation),
                 "--max_steps", "2", "--vocab_size", "300", "--embedding_size", "16", "--encoder_hidden", "16",
                 "--decoder_hidden", "24", "--batch_tokens", "200", "--eval_sentences", "0", "--progress", "false",
                 "--threads", "1"]) == 0
    runs = [(translation, {"encoder.onnx", "decoder_step.onnx"})]
    if shutil.which("espeak-ng") is not None:
        from lstmlab.data import espeak

        data = tmp_path / "speech_data"
        data.mkdir()
        for index, text in enumerate(["the cat sat", "a dog ran home", "good night sweet prince", "now is the winter"] * 3):
            espeak.synthesize(text, espeak.Voice("en-us", "m3", 170, 50), data / f"u{index}.wav")
            (data / f"u{index}.txt").write_text(text + "\n")
        speech = tmp_path / "speech"
        assert main(["train", "speech", "--data", str(data), "--out", str(speech), "--max_steps", "1",
                     "--bidirectional", "false", "--normalization", "global", "--hidden_size", "16",
                     "--num_layers", "1", "--batch_frames", "1500", "--eval_utterances", "0", "--progress", "false",
                     "--threads", "1", "--spec_augment", "false"]) == 0
        runs.append((speech, {"acoustic.onnx", "acoustic_step.onnx"}))
    capsys.readouterr()
    for run, graphs in runs:
        assert main(["export", str(run)]) == 0
        printed = capsys.readouterr().out
        assert printed.count(": ok") == len(graphs), printed
        assert {p.name for p in (run / "onnx").glob("*.onnx")} == graphs
