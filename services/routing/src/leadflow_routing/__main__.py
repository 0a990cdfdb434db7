from pathlib import Path

from leadflow_kit.cli import run_service_cli
from leadflow_routing.app import create_app
from leadflow_routing.seed import seed_demo
from leadflow_routing.settings import Settings


def main() -> None:
    """``leadflow-<service> serve|migrate|seed-demo`` (also ``python -m leadflow_<service>``)."""
    run_service_cli(Settings, create_app, Path(__file__).parent / "migrations", seed_demo)


if __name__ == "__main__":
    main()
