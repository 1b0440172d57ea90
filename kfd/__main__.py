from kfd.cli import main

raise SystemExit(main())
