from wsidesk.cli import main

raise SystemExit(main())
