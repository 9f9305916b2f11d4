"""What every bad input must look like on the command line: exit 2, one error line, no traceback."""

from __future__ import annotations


def error_line(result, *needles: str, code: int = 2) -> str:
    """The single 'Error: ...' line of a failed CLI invocation, checked to contain every needle."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output and "PosixPath(" not in output and "[Errno" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], output
    return errors[0]
