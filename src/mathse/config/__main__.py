"""`python -m mathse.config --write | --check CONFIG.yaml`."""

from mathse.config.files import main

raise SystemExit(main())
