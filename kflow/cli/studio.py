"""`kflow studio`: serve the band studio over a run (the demo's when none is given)."""

from __future__ import annotations

from pathlib import Path

from .args import nonneg_int

DEMO_RUN = Path("outputs/demo/run")


def run_studio(args) -> None:
    from ..utils.devices import pick_device
    from ..utils.errors import ConfigError

    run = args.run
    if run is None:
        if not (DEMO_RUN / "checkpoints").is_dir():
            raise ConfigError(f"no run given and no demo run in {DEMO_RUN}; run `make demo` first or give a run folder")
        run = DEMO_RUN
    if not Path(run).exists():
        raise ConfigError(f"run {run} does not exist; give a run folder or checkpoint written by `kflow train`")
    try:
        from .. import studio  # noqa: F401  - needs Pillow: the studio extra
    except ImportError as e:
        raise ConfigError(f"the studio needs its extra ({e.name} is missing): pip install 'kflow[studio]'") from None
    from ..studio.server import serve

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    serve(run, host=args.host, port=args.port, device=pick_device(args.device))


def add_parser(sub) -> None:
    st = sub.add_parser("studio", help="a local web page to steer a run's generation band by band")
    st.add_argument("run", nargs="?", default=None, help=f"run folder or checkpoint (default: the demo's, {DEMO_RUN})")
    st.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    st.add_argument("--port", type=nonneg_int, default=8765, help="port (0 picks a free one)")
    st.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    st.add_argument("--threads", type=nonneg_int, default=0, help="CPU threads for torch (0: torch's default)")
    st.set_defaults(func=run_studio)
