"""User mistakes end with one line on stderr and exit code 2."""
import argparse

import pytest

from dualref.cli.main import run_main
from dualref.utils.errors import UserError


def _parser():
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--debug", action="store_true")
    return parser


def _fail(args):
    raise UserError("--rho 2: expected a number in (0, 1)")


def test_user_error_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        run_main(_parser(), _fail, argv=[])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "tool: error: --rho 2: expected a number in (0, 1)\n"


def test_debug_keeps_the_traceback():
    with pytest.raises(UserError):
        run_main(_parser(), _fail, argv=["--debug"])


def test_success_returns_main_value():
    assert run_main(_parser(), lambda args: 7, argv=[]) == 7


def test_worker_wrapped_error_is_reduced_to_its_message():
    from dualref.cli.main import one_line

    wrapped = UserError("Caught UserError in DataLoader worker process 0.\n"
                        "Original Traceback (most recent call last):\n  File \"x.py\"\n"
                        "dualref.utils.errors.UserError: cannot read image /d/b.jpg: truncated")
    assert one_line(wrapped) == "cannot read image /d/b.jpg: truncated"
    assert one_line(UserError("plain")) == "plain"


def test_parameter_errors_name_the_option_that_sets_them(capsys):
    """The library names the parameter (knn); the command line shows its flag (--knn)."""
    from dualref.cli import build_parser
    from dualref.configs import AdaptConfig
    from dualref.losses.spread import check_knn
    from dualref.utils.errors import ParamError

    with pytest.raises(ParamError, match=r"^knn=120: must be an integer in \[0, 98\]"):
        check_knn(120, 100)
    with pytest.raises(SystemExit) as exc:
        run_main(build_parser(AdaptConfig, "t"), lambda args: check_knn(args.knn, 100),
                 argv=["--knn", "120"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and ": error: --knn 120: must be an integer in [0, 98]" in err[0]
