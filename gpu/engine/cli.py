"""``semcache engine serve|calibrate``: the chunk-reuse engine from the command line.

    semcache engine calibrate [--model smollm2] [--ratios 0,0.05,...] [--prompts 16] [--floor 0.95]
                              [--out engine-gate.json]
    semcache engine serve [--model PATH|smollm2] [--device cpu|cuda] [--host H] [--port N]
                          [--ratio R] [--gate engine-gate.json]

Torch, transformers, FastAPI and uvicorn are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_GATE_FILE = Path("engine-gate.json")

engine_app = typer.Typer(help="The chunk-reuse engine: an OpenAI-compatible server with chunk KV "
                         "reuse, and its quality gate.", no_args_is_help=True, add_completion=False)

ModelOpt = Annotated[str, typer.Option("--model", help="'smollm2' or a local Hugging Face folder "
                                       "(Llama, Qwen2, Mistral)")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda[:N]")]
CheckLayerOpt = Annotated[Optional[int], typer.Option(  # noqa: UP045
    min=0, help="blend: the last layer computed for every token (default: 0 with --select query, "
                "1 with --select deviation, where it is the layer the deviation is scored at)")]
AnchorOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    help="blend: file with the passage chunk KV is computed after (default: the built-in one; "
         "a passage in the genre of your documents is best)")]
SelectOpt = Annotated[str, typer.Option(help="blend: how chunk tokens are chosen for recompute: "
                                       "query (attention of the question) or deviation")]
ScoreOpt = Annotated[str, typer.Option(help="blend: deviation score, k, v or kv")]
BoundaryOpt = Annotated[int, typer.Option(min=0, help="blend: first tokens of each chunk always "
                                          "recomputed (they count toward r)")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _check_device(device: str) -> None:
    if device != "cpu" and not device.startswith("cuda"):
        _fail(f"--device must be cpu or cuda[:N], got {device!r}")


def _ratios(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"--ratios must be comma-separated numbers, got {text!r}")
        raise  # unreachable: _fail exits
    if not values or any(not 0.0 <= r <= 1.0 for r in values):
        _fail(f"--ratios must be numbers in [0, 1], got {text!r}")
    return values


@engine_app.command("serve")
def serve(
    model: ModelOpt = "smollm2",
    device: DeviceOpt = "cpu",
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8100,
    ratio: Annotated[Optional[float], typer.Option(  # noqa: UP045
        help="default recompute ratio (default: the gate's, else 0.15); never below the gate")] = None,
    gate: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        help=f"quality gate file (default: {DEFAULT_GATE_FILE} when it exists)")] = None,
    served_name: Annotated[str, typer.Option(help="model name clients use")] = "smollm2",
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    check_layer: CheckLayerOpt = None,
    select: SelectOpt = "query",
    score: ScoreOpt = "kv",
    boundary_tokens: BoundaryOpt = 0,
    anchor_text: AnchorOpt = None,
) -> None:
    """Serve MODEL through an OpenAI-compatible API (chat, completions, streaming)."""
    _check_device(device)
    try:
        import uvicorn
        from semcache.gpu.engine.server import create_engine_app
    except ImportError as exc:
        _fail(f"the engine server needs fastapi and uvicorn ({exc.name}): pip install semcache[proxy]")
    from semcache.gpu.engine.engine import Engine, EngineConfig
    from semcache.gpu.engine.quality_gate import QualityGate

    gate_path = gate if gate is not None else (DEFAULT_GATE_FILE if DEFAULT_GATE_FILE.exists() else None)
    if gate is not None and not gate.exists():
        _fail(f"gate file {gate} does not exist (run `semcache engine calibrate --out {gate}`)")
    try:
        quality_gate = QualityGate.load(gate_path) if gate_path is not None else None
        config = EngineConfig(ratio=ratio, check_layer=check_layer, select=select, score=score,
                              boundary_tokens=boundary_tokens, anchor_context=_read_anchor(anchor_text))
        engine = Engine.from_model(model, device, config=config, gate=quality_gate)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"engine: {engine.name} on {device}, recompute ratio {engine.default_ratio}"
               + (f" (gate {gate_path}: r >= {quality_gate.ratio})" if quality_gate else " (no gate)"),
               err=True)
    uvicorn.run(create_engine_app(engine, served_name), host=host, port=port, log_level=log_level)


@engine_app.command("calibrate")
def calibrate(
    model: ModelOpt = "smollm2",
    device: DeviceOpt = "cpu",
    ratios: Annotated[str, typer.Option(help="comma-separated grid of recompute ratios")] =
        "0,0.05,0.1,0.15,0.2,0.3,0.5,1",
    prompts: Annotated[int, typer.Option(min=1, help="number of RAG prompts")] = 16,
    floor: Annotated[float, typer.Option(help="teacher-forced agreement the gate must meet")] = 0.95,
    new_tokens: Annotated[int, typer.Option(min=1, help="continuation length compared")] = 32,
    seed: Annotated[int, typer.Option(help="prompt sampling seed")] = 0,
    out: Annotated[Path, typer.Option(help="gate file to write")] = DEFAULT_GATE_FILE,
    check_layer: CheckLayerOpt = None,
    select: SelectOpt = "query",
    score: ScoreOpt = "kv",
    boundary_tokens: BoundaryOpt = 0,
    anchor_text: AnchorOpt = None,
) -> None:
    """Measure agreement with full prefill over a grid of r and write the quality gate."""
    _check_device(device)
    grid = _ratios(ratios)
    if not 0.0 < floor <= 1.0:
        _fail(f"--floor must be in (0, 1], got {floor}")
    from semcache.gpu.engine.calibrate import calibrate as run_calibration
    from semcache.gpu.engine.engine import Engine, EngineConfig

    try:
        config = EngineConfig(check_layer=check_layer, select=select, score=score,
                              boundary_tokens=boundary_tokens, anchor_context=_read_anchor(anchor_text))
        engine = Engine.from_model(model, device, config=config)
    except ValueError as exc:
        _fail(str(exc))

    def progress(done: int, total: int) -> None:
        typer.echo(f"  prompt {done}/{total}", err=True)

    result = run_calibration(engine, grid, prompts, floor, new_tokens, seed, progress)
    result.save(out)
    for r in sorted(result.agreement, key=float):
        typer.echo(f"r={float(r):<5} agreement={result.agreement[r]:.3f} kl={result.kl[r]:.4f}")
    verdict = "meets" if result.met else "no ratio met; gate at full recompute for"
    typer.echo(f"gate: r={result.ratio} {verdict} floor {floor} -> {out}")


def _read_anchor(path: Path | None) -> str:
    from semcache.gpu.chunks.anchor import ANCHOR_CONTEXT

    if path is None:
        return ANCHOR_CONTEXT
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        _fail(f"cannot read --anchor-text {path}: {exc.strerror}")
