"""The InfraValidator in a whole run (the shared `small_run`): after the Evaluator and
before the Pusher, it served the trained model in our server, which answered the eval
sample as the Trainer did; the Pusher read its blessing; the run report shows it."""

import pytest

from components.infra_validator import spec
from pipeline import nodes
from reports import mlmd_runs
from reports import run_report

pytestmark = pytest.mark.e2e


def test_the_run_serves_the_model_between_evaluator_and_pusher(small_run):
    pipeline_run, run = small_run
    order = list(run.nodes)
    assert order.index(nodes.EVALUATOR) < order.index(nodes.INFRA_VALIDATOR) < order.index(
        nodes.PUSHER)
    evaluator, infra, pusher = (run.nodes[n].execution for n in (
        nodes.EVALUATOR, nodes.INFRA_VALIDATOR, nodes.PUSHER))
    assert evaluator.last_update_time_since_epoch <= infra.create_time_since_epoch
    assert infra.last_update_time_since_epoch <= pusher.create_time_since_epoch

    blessing = run.output(nodes.INFRA_VALIDATOR, spec.BLESSING_KEY)
    assert mlmd_runs.custom_property(blessing, spec.BLESSED_PROPERTY) == 1
    result = spec.read_result(blessing.uri)
    settings = pipeline_run.config.infra_validation
    assert result['blessed'] and result['images'] == settings.sample_images
    assert result['warmup_requests'] == pipeline_run.config.warmup_images
    assert result['max_probability_difference'] <= settings.probability_tolerance
    assert all(a['served'] == a['trained'] for a in result['answers'])
    assert result['p50_latency_ms'] > 0 and result['server_exit_code'] == 0
    # The Pusher pushed with this very blessing as its input.
    [used] = run.nodes[nodes.PUSHER].inputs['infra_blessing']
    assert used.id == blessing.id
    assert mlmd_runs.custom_property(run.output(nodes.PUSHER, 'pushed_model'), 'pushed') == 1
    line = run_report.infra_validation(run)
    assert line.startswith('blessed: our server loaded it in ') and (
        f"p50 {result['p50_latency_ms']:.1f} ms" in line)
