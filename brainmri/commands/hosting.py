"""`train.py` commands that publish: a release folder to the Hugging Face Hub (push), the app as a Space (space)."""

from __future__ import annotations

import argparse


def cmd_push(args) -> int:
    from brainmri.inference.hub import push_release

    url = push_release(args.checkpoint, args.repo_id, private=args.private, token=args.token)
    print(url)
    return 0


def cmd_space(args) -> int:
    from pathlib import Path

    from brainmri.ui.space import publish_space, stage_space

    if args.stage:  # the git way: the files into a clone of the Space, to commit and push
        sizes = stage_space(Path(args.stage), extra=tuple(args.also))
        print(f"{len(sizes)} files, {sum(sizes.values()) / 2**20:.1f} MB in {args.stage}; now, in it: git lfs install,")
        print("git add . && git commit -m 'Publish the brainmri app' && git push")
        return 0
    url, sizes = publish_space(args.repo_id, private=args.private, token=args.token, extra=tuple(args.also))
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    print(
        f"{len(sizes)} files, {sum(sizes.values()) / 2**20:.1f} MB; largest: "
        + ", ".join(f"{name} ({size / 2**20:.1f} MB)" for name, size in largest)
    )
    print(url)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add these commands to ``train.py``'s sub-parsers."""
    token_help = "default: HF_TOKEN or the token saved by `hf auth login`"
    p = sub.add_parser("push", help="upload a release folder to the Hugging Face Hub")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", default=None, help=token_help)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("space", help="publish the app with the bundled model as a Hugging Face Space (Gradio)")
    p.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", default=None, help=token_help)
    p.add_argument(
        "--also",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="more files for the Space (glob patterns from the repository root, e.g. 'docs/**/*')",
    )
    p.add_argument("--stage", default=None, metavar="DIR", help="write the files into DIR (a clone), no upload")
    p.set_defaults(func=cmd_space)
