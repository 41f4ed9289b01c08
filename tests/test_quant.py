"""`MODEL:quant=SCHEME`: quantized tiny Llamas load, generate, and record their scheme and the
EfficientLLM axes (compression, memory and compute utilization, energy) in the run log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_eff.backends import choose_engine, make_backend
from llm_eff.backends.base import GenerationConfig, user_chat
from llm_eff.backends.efficiency import EnergyMeter, peak_flops, rapl_microjoules, shares
from llm_eff.core.errors import UserError
from llm_eff.models import parse_model
from llm_eff.models.quant import SCHEMES, parameter_count, weight_bytes
from tests.conftest import cli

SCHEME_NAMES = ("fp32", "bf16", "int8", "int4", "nf4")


@pytest.fixture(scope="module")
def backends():
    """One tiny-Llama backend per scheme, each loaded through `load_local` as a user's is."""
    return {
        s: make_backend(parse_model(f"tiny-llama:quant={s}"), batch_size=2) for s in SCHEME_NAMES
    }


def test_parse_quant_option():
    ref = parse_model("tiny-llama:quant=INT4")
    assert (ref.kind, ref.quant, ref.name) == ("tiny", "int4", "tiny-llama:quant=int4")
    assert parse_model("tiny-llama").quant == ""
    with pytest.raises(UserError, match="quant= takes fp32, bf16, fp16, int8, int4, nf4"):
        parse_model("tiny-llama:quant=int3")
    with pytest.raises(UserError, match="local models"):
        parse_model("openai/gpt-4o-mini:quant=int4")
    with pytest.raises(UserError, match="unknown model"):
        parse_model("no-such-model:quant=int4")


def test_quant_runs_on_transformers_and_other_engines_refuse_it():
    ref = parse_model("smollm2-135m:quant=int8")  # a GGUF model: auto would pick llama.cpp
    assert choose_engine(ref) == "transformers"
    for engine in ("llamacpp", "vllm"):
        with pytest.raises(UserError, match="runs on the transformers engine"):
            choose_engine(ref, engine)


def test_linear_layers_are_really_quantized(backends):
    from bitsandbytes.nn import Linear4bit
    from optimum.quanto import QLinear

    layer = "model.layers.0.self_attn.q_proj"
    assert isinstance(backends["int8"].model.get_submodule(layer), QLinear)
    assert isinstance(backends["int4"].model.get_submodule(layer), QLinear)
    assert isinstance(backends["nf4"].model.get_submodule(layer), Linear4bit)
    # the output head stays in float in every scheme (as transformers' integrations leave it)
    assert type(backends["int4"].model.lm_head).__name__ == "Linear"
    # the decoder layers hold the quantized weights (and float norms): packed and scaled
    layers = {s: weight_bytes(b.model.model.layers) for s, b in backends.items()}
    assert layers["bf16"] == layers["fp32"] / 2
    assert layers["int8"] < 0.3 * layers["fp32"]
    assert layers["int4"] < 0.2 * layers["fp32"]
    assert layers["nf4"] < 0.25 * layers["fp32"]
    whole = {s: weight_bytes(b.model) for s, b in backends.items()}
    assert whole["fp32"] > whole["int8"] > whole["int4"] and whole["fp32"] > whole["nf4"]
    # the weights are counted as trained, whatever their storage
    assert len({parameter_count(b.model) for b in backends.values()}) == 1


def test_each_scheme_generates_and_reports_its_axes(backends):
    config = GenerationConfig(max_new_tokens=6, n=2)
    rates = {}
    for scheme, backend in backends.items():
        out = backend.generate([user_chat("def add(a, b):"), user_chat("hello")], config)
        assert [len(group) for group in out] == [2, 2]
        usage = out[0][0].usage
        assert usage.completion_tokens > 0 and usage.quant == scheme
        rates[scheme] = usage.compression_rate
        assert 0 < usage.memory_utilization < 1
        assert 0 < usage.compute_utilization < 1
        assert usage.energy_j is None or usage.energy_j >= 0  # None where no counter is read
        assert usage.ttft_s is not None and usage.ttft_s <= usage.latency_s
    assert rates["fp32"] == pytest.approx(0.5, rel=1e-3)
    assert rates["bf16"] == pytest.approx(1.0, rel=1e-3)
    # the tiny model's float32 embeddings stay as they are, so whole-model rates stay low
    assert rates["int4"] > rates["int8"] > rates["fp32"] and rates["nf4"] > rates["fp32"]
    assert set(SCHEME_NAMES) <= set(SCHEMES)


def test_the_run_log_holds_typed_axes_and_the_report_shows_them(
    tmp_path: Path, humaneval_file: Path
):
    run = tmp_path / "run.jsonl"
    out = cli(
        "eval",
        "--bench",
        f"humaneval:{humaneval_file}",
        "--system",
        "tiny-llama:quant=int8,max_tokens=6",
        "--system",
        "reference",
        "--run",
        str(run),
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in run.read_text().splitlines()]
    quantized = [r for r in rows if r["system"] != "reference"]
    assert len(quantized) == 3
    for row in quantized:
        usage = row["usage"]
        assert usage["quant"] == "int8" and row["system"].startswith("tiny-llama:quant=int8")
        assert isinstance(usage["compression_rate"], float) and usage["compression_rate"] > 0.5
        assert isinstance(usage["memory_utilization"], float)
        assert isinstance(usage["compute_utilization"], float)
        assert usage["energy_j"] is None or isinstance(usage["energy_j"], float)
    rep = cli("report", str(run), "--out", str(tmp_path / "report"))
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    section = md.split("### EfficientLLM", 1)[1].split("###", 1)[0]
    line = next(x for x in section.splitlines() if x.startswith("| tiny-llama:quant=int8"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "int8" and cells[2].endswith("x") and cells[4].endswith("%")
    reference = next(x for x in section.splitlines() if x.startswith("| reference"))
    assert "not measured" not in reference  # only local systems have energy counters
    assert list((tmp_path / "report" / "plots").glob("*-efficiency.png"))


def test_a_bad_scheme_is_one_line_on_the_cli(tmp_path: Path, humaneval_file: Path):
    out = cli(
        "eval",
        "--bench",
        f"humaneval:{humaneval_file}",
        "--system",
        "tiny-llama:quant=fp8",
        "--run",
        str(tmp_path / "run.jsonl"),
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "unknown quantization 'fp8'" in out.stderr


def _powercap(root: Path, packages: dict[str, tuple[int, int]]) -> None:
    for name, (value, wrap) in packages.items():
        domain = root / name
        domain.mkdir(parents=True, exist_ok=True)
        (domain / "energy_uj").write_text(f"{value}\n")
        (domain / "max_energy_range_uj").write_text(f"{wrap}\n")


def test_rapl_energy_sums_packages_and_survives_a_wraparound(tmp_path: Path):
    """A powercap tree as the kernel lays it out (two packages and a core subdomain that must
    not be counted twice); package 1 wraps during the measurement."""
    _powercap(tmp_path, {"intel-rapl:0": (1_000_000, 10**9), "intel-rapl:1": (999_000_000, 10**9)})
    _powercap(tmp_path, {"intel-rapl:0:0": (5, 10**9)})  # a subdomain of package 0
    with EnergyMeter("cpu", rapl_root=tmp_path) as meter:
        _powercap(tmp_path, {"intel-rapl:0": (3_500_000, 10**9), "intel-rapl:1": (500_000, 10**9)})
        _powercap(tmp_path, {"intel-rapl:0:0": (10**8, 10**9)})
    # package 0: 2.5 J; package 1: 1 J to the wrap and 0.5 J after it
    assert meter.source == "rapl" and meter.joules == pytest.approx(4.0)


def test_energy_is_not_measured_where_no_counter_is_readable(tmp_path: Path):
    assert rapl_microjoules(tmp_path / "absent") == {}
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "energy_uj").write_text("12\n")
    (domain / "max_energy_range_uj").mkdir()  # unreadable as a number: nothing is reported
    with EnergyMeter("cpu", rapl_root=tmp_path) as meter:
        pass
    assert meter.joules is None and meter.source == ""
    assert shares(None, [1.0, 2.0]) == [None, None]
    assert shares(3.0, [1.0, 2.0]) == [1.0, 2.0]


def test_peak_flops_probe_is_positive_and_cached():
    first = peak_flops("cpu", "float32")
    assert first > 1e8  # any CPU of this century does 0.1 GFLOP/s on a 1024 matmul
    assert peak_flops("cpu", "float32") == first
