"""`tlbench predict` and `tlbench export`: the deployment subcommands.

Importing this module imports no torch: `predict` runs on onnxruntime alone; `export` imports
torch only when it runs.
"""

from __future__ import annotations

import json
import sys


def add_deploy_parsers(sub) -> None:
    """Add the ``predict`` and ``export`` subcommands to the CLI's subparsers."""
    predict = sub.add_parser("predict", help="classify images or .npy arrays with an exported ONNX model (onnxruntime only)")
    predict.add_argument("model", metavar="MODEL.onnx")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="PNG/JPEG images or .npy arrays (model-ready, normalised)")
    predict.add_argument("--top-k", "-k", type=int, default=3, metavar="K", help="how many classes to show (default 3)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export", help="re-export a stored run's model to ONNX (and INT8) from its model.pt")
    export.add_argument("run_dir", metavar="RUN_DIR", help="one run's directory, e.g. results/runs/<run>")
    export.add_argument("--output", "-o", metavar="FILE.onnx", help="where to write, a path ending in .onnx outside any run "
                        "directory (default RUN_DIR/model.onnx, only when the run has none: a run's own files are never "
                        "replaced); the INT8 model goes beside it as FILE.int8.onnx")
    export.add_argument("--no-int8", action="store_true", help="skip INT8 quantization")
    export.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_predict(args, registry=None) -> int:
    from tlbench.plugin.errors import UserError
    from tlbench.deploy.predict import predict, render

    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    predictions = predict(args.model, args.inputs, args.top_k)
    if args.json:  # strict JSON: predict() refuses non-finite inputs and outputs, so no NaN here
        print(json.dumps([p.as_dict() for p in predictions], indent=2, allow_nan=False))
    else:
        render(predictions)
    return 0


def cmd_export(args, registry) -> int:
    from pathlib import Path

    from tlbench.cli.paths import check_output_dir, check_output_file, is_run_dir
    from tlbench.plugin.errors import UserError
    from tlbench.execution.reexport import export_run
    from tlbench.execution.results import INT8_FILE, ONNX_FILE

    if args.output is not None:  # checked before the model is rebuilt
        if not args.output.lower().endswith(".onnx"):
            raise UserError(f"--output {args.output!r} must end in .onnx (the INT8 model goes beside it as NAME.int8.onnx)")
        check_output_file(args.output, "--output", "FILE.onnx")
        if not args.no_int8:
            check_output_file(args.output[: -len(".onnx")] + ".int8.onnx", "--output's INT8 model", "FILE.onnx")
    elif Path(args.run_dir).is_dir():
        run_dir = Path(args.run_dir)
        check_output_dir(run_dir, "RUN_DIR", guard=False)  # the default writes into the run, where it has no model
        held = [name for name in (ONNX_FILE, *(() if args.no_int8 else (INT8_FILE,))) if (run_dir / name).exists()]
        if held and is_run_dir(run_dir):
            raise UserError(f"RUN_DIR {args.run_dir!r} already holds the run's {held[0]}, which export never replaces; "
                            "give --output FILE.onnx outside the run directory")
    report = export_run(args.run_dir, registry, output=args.output, int8=not args.no_int8)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    line = (
        f"wrote {report['onnx_path']}: torch acc {100 * report['torch_target_acc']:.1f}%, onnxruntime acc "
        f"{100 * report['onnx_target_acc']:.1f}%, top-1 agreement {100 * report['onnx_top1_agreement']:.1f}%, "
        f"max |dlogit| {report['onnx_max_abs_diff']:.2e}"
    )
    if report.get("int8_error"):
        line += f"; INT8 failed: {report['int8_error']}"
    elif "int8_target_acc" in report:
        line += f"; INT8 ({report['int8_method']}) acc {100 * report['int8_target_acc']:.1f}%, {report['int8_size_mb']:.2f} MB"
    print(line, file=sys.stdout)
    return 0
