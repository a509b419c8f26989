"""`python -m lossbench` and the `lossbench` command: the CLI, with a Ctrl-C before it has written
anything answered in one line (status 130) at once (lossbench.core.startup says why)."""


def entry() -> None:
    try:
        from lossbench.core.startup import stop_at_once

        stop_at_once()
        from lossbench.cli import main
    except KeyboardInterrupt:  # one that came before the handler was in place
        from lossbench.core.startup import stop_now

        stop_now()
    main()


if __name__ == "__main__":
    entry()
