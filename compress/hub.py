"""Upload a finished model folder to the Hugging Face Hub (or any server `HF_ENDPOINT` points at).

The token comes from the environment (HF_TOKEN) or the user's `hf auth login`; it is never printed or written.
Failures leave the local folder as it was and give one line saying what to do."""

from __future__ import annotations

from pathlib import Path

from .errors import CompressError


def push_folder(folder: str | Path, repo: str, private: bool = True, token: str | None = None) -> str:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_token

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise CompressError("push", f"{folder} holds no model (config.json missing)", "run the recipe first")
    token = token or get_token()
    if not token:
        raise CompressError("push", "no Hugging Face token", "set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    try:
        api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo,
            repo_type="model",
            commit_message="Upload model compressed with compress",
        )
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise CompressError(
            "push",
            f"the Hub refused the upload to {repo} (HTTP {status})",
            "check the repository name and that your token may write to it",
        ) from None
    except (OSError, httpx2.HTTPError) as e:  # connection refused, DNS failures, timeouts
        raise CompressError(
            "push",
            f"cannot reach the Hub ({type(e).__name__})",
            "check the network / HF_ENDPOINT; the local output is unchanged",
        ) from None
    return str(getattr(info, "commit_url", info))
