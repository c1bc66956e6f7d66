from kanplatform.cli import main

raise SystemExit(main())
