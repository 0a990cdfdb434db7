from pathlib import Path

from leadflow_enrichment.app import create_app
from leadflow_enrichment.seed import seed_demo
from leadflow_enrichment.settings import Settings
from leadflow_kit.cli import run_service_cli

if __name__ == "__main__":
    run_service_cli(Settings, create_app, Path(__file__).parent / "migrations", seed_demo)
