"""One family of errors whose messages are fit to show the user as they are.

Every error the engine raises on purpose is an `EngineError`; the UI and the CLI turn it into
a message at one boundary. Nothing is classified by substring: catch the subclass.
"""


class EngineError(Exception):
    """Base class. `str(err)` is a complete sentence for the user."""


class ModelFolderError(EngineError):
    """A model folder is missing, broken or foreign. The message names the file and the fault."""


class ProviderError(EngineError):
    """An execution provider was asked for that ONNX Runtime cannot give (no fallback allowed)."""


class ChatTemplateError(EngineError):
    """A chat template failed to render, raised on purpose, or tried to escape the sandbox."""


class PromptTooLongError(EngineError):
    """A single message (with the system prompt) cannot fit in the model's context window."""


class SamplingError(EngineError):
    """The sampler got logits it cannot sample from (all -inf or NaN)."""


class EmptyMessageError(EngineError):
    """The user's message is empty or only whitespace."""


class TokenIdError(EngineError):
    """A token id given by the caller (a branch's picked alternative) is not in the vocabulary."""


class SettingsError(EngineError):
    """A generation setting is out of its range (events.SETTING_RANGES names every range)."""
