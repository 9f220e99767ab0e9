"""User-facing errors: one line that names the field and says how to fix it."""


class CompressError(ValueError):
    """Bad input from a user. The CLI prints it as one line and exits with code 2."""

    def __init__(self, field: str, problem: str, fix: str | None = None):
        self.field, self.problem, self.fix = field, problem, fix
        msg = f"`{field}`: {problem}"
        if fix:
            msg += f" — {fix}"
        super().__init__(msg)
