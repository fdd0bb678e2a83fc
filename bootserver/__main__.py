from bootserver.cli import main

raise SystemExit(main())
