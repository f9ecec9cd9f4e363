"""Typed errors. Each carries a `user_message`: what went wrong and what to do about it.

The server shows `user_message` to the user (window/showMessage or a JSON-RPC error message);
`str(error)` stays the technical detail for the log.
"""

from __future__ import annotations


class CodeparrotError(Exception):
    """Base class of every error the server reports to the user."""

    default_message = "Code completion failed."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.default_message)
        self.user_message: str = user_message or (
            f"{self.default_message} {detail}".strip() if detail else self.default_message
        )


class ModelLoadError(CodeparrotError):
    default_message = (
        "The completion model could not be loaded. Check the `codeparrot.model` setting "
        "(or `--model`) and the server log."
    )


class ModelNotFoundError(ModelLoadError):
    default_message = (
        "No completion model was found. Pass a local model directory with `--model PATH` "
        "or set `codeparrot.model`."
    )


class HubUnavailableError(CodeparrotError):
    """The Hugging Face hub is needed (a model, a dataset) but offline or unreachable."""

    default_message = (
        "The model hub is not reachable (offline or HF_HUB_OFFLINE=1). Download the model "
        "elsewhere and set `codeparrot.model` to its local directory."
    )


class UnknownDocumentError(CodeparrotError):
    default_message = "The document is not open on the server; reopen the file."

    def __init__(self, uri: str) -> None:
        super().__init__(
            f"unknown document {uri!r}",
            user_message=f"Document {uri} is not open on the server; reopen the file.",
        )
        self.uri = uri


class PositionError(CodeparrotError):
    default_message = "The requested position is outside the document; the editor and server are out of sync."


class SettingsError(CodeparrotError):
    default_message = "A setting has an invalid value; the previous value was kept."


class GenerationError(CodeparrotError):
    default_message = (
        "Generating a completion failed. Try a smaller `codeparrot.maxNewTokens`, "
        "`codeparrot.quantize`, or `codeparrot.device: cpu`."
    )
