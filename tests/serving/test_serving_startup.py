"""Start-up checks of the real server process: labels and flags."""

import re
import subprocess
import sys

from tests.serving import server_process

MODEL = 'cats_dogs'


def test_label_on_an_unavailable_version_is_refused_at_start(
        tmp_path, exported_models):
    base = tmp_path / MODEL
    base.mkdir()
    server_process.copy_version(exported_models.image_v1, base, 1)
    config = tmp_path / 'models.config'
    config.write_text(f"""
model_config_list {{
  config {{
    name: '{MODEL}'
    base_path: '{base}'
    model_platform: 'tensorflow'
    version_labels {{ key: 'stable' value: 1 }}
    version_labels {{ key: 'canary' value: 7 }}
  }}
}}
""")
    server = server_process.ServerProcess(
        [f'--model_config_file={config}'], tmp_path / 'server.log').start()
    try:
        assert server.wait_exit(timeout=120) == 1
    finally:
        server.stop()
    log = server.log()
    assert ('Failed to start server. Error: FAILED_PRECONDITION: Request to '
            f'assign label to version 7 of model {MODEL}, which is not '
            'currently available for inference') in log
    assert 'Server stopped' in log


def _run_server(args):
    return subprocess.run(
        [sys.executable, '-m', 'serving.server'] + args,
        cwd=str(server_process.PROJECT_ROOT), env=server_process.subprocess_env(),
        capture_output=True, text=True, timeout=60, check=False)


def test_flags_are_checked_before_anything_starts(tmp_path):
    both = _run_server([f'--model_base_path={tmp_path}',
                        f'--model_config_file={tmp_path / "x.config"}'])
    assert both.returncode == 2
    assert 'Set exactly one of --model_base_path' in both.stderr
    batching = _run_server([f'--model_base_path={tmp_path}',
                            f'--batching_parameters_file={tmp_path / "b"}'])
    assert batching.returncode == 2
    assert ('--batching_parameters_file is set without --enable_batching'
            in batching.stderr)
    ports = _run_server([f'--model_base_path={tmp_path}', '--port=0',
                         '--rest_api_port=0'])
    assert ports.returncode == 2
    assert 'At least one of --port and --rest_api_port' in ports.stderr


def test_start_up_log_is_the_servers_own_lines(tmp_path, exported_models):
    base = tmp_path / MODEL
    base.mkdir()
    server_process.copy_version(exported_models.image_v1, base, 1)
    server = server_process.ServerProcess(
        [f'--model_name={MODEL}', f'--model_base_path={base}'], tmp_path / 'server.log').start()
    try:
        server.wait_ready()
    finally:
        assert server.stop() == 0
    lines = server.log().splitlines()
    own = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (INFO|WARNING|ERROR) \S+\] ')
    assert [line for line in lines if not own.match(line)] == []
    assert not [line for line in lines if 'WARNING' in line or 'ERROR' in line], lines
    text = '\n'.join(lines)
    assert f'Exporting HTTP/REST API at:127.0.0.1:{server.rest_port}' in text
    assert f'Running gRPC ModelServer at 0.0.0.0:{server.grpc_port}' in text or (
        f':{server.grpc_port}' in text)
    assert f'Successfully loaded servable version {{name: {MODEL} version: 1}}' in text
