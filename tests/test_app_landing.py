"""The app's landing page and the shared sidebar: no runs, URL selection and fallbacks,
corrupt files named."""
import json

from app_fixtures import copy_run, first_test_user, run_page, texts


def test_app_without_runs_says_how_to_make_one(tmp_path, monkeypatch):
    at = run_page("app.py", monkeypatch, tmp_path)
    assert not at.exception
    assert "make demo" in at.info[0].value


def test_landing_shows_the_run_and_honours_user_and_domain_from_the_url(tiny_artifacts, monkeypatch):
    user, domain = first_test_user(tiny_artifacts)
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="tiny", user=user, domain=domain)
    assert not at.exception
    assert [m.value for m in at.metric][0] == "120"
    assert at.selectbox(key="_pick_run").value == "tiny" and at.selectbox(key="_pick_user").value == user
    assert at.radio(key="_pick_domain").value == domain
    assert {k: at.query_params[k] for k in ("run", "user", "domain")} in (
        {"run": "tiny", "user": user, "domain": domain}, {"run": ["tiny"], "user": [user], "domain": [domain]})
    assert f"user **{user}**" in texts(at)


def test_unknown_run_user_and_domain_in_the_url_fall_back_with_a_message(tiny_artifacts, monkeypatch):
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="nosuch")
    assert not at.exception and "nosuch" in at.warning[0].value
    at = run_page("app.py", monkeypatch, tiny_artifacts, run="tiny", user="nobody", domain="nowhere")
    assert not at.exception
    warned = " ".join(w.value for w in at.warning)
    assert "nobody" in warned and "nowhere" in warned
    assert at.selectbox(key="_pick_user").value  # some user was picked instead


def test_picking_another_user_updates_the_url(tiny_artifacts, monkeypatch):
    at = run_page("app.py", monkeypatch, tiny_artifacts)
    options = at.selectbox(key="_pick_user").options
    at.selectbox(key="_pick_user").select(options[3]).run()
    assert not at.exception
    assert at.query_params["user"] in (options[3], [options[3]])


def test_app_names_a_corrupt_manifest_and_a_corrupt_data_file(tmp_path, tiny_artifacts, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    at = run_page("app.py", monkeypatch, tmp_path)
    assert not at.exception
    assert "manifest.json" in at.error[0].value and "corrupt" in at.error[0].value
    arts = copy_run(tiny_artifacts, tmp_path / "b")
    (arts / "tiny" / "data.json").write_text(json.dumps({"domains": []}))
    at = run_page("app.py", monkeypatch, arts, run="tiny")
    assert not at.exception
    assert "data.json" in at.error[0].value


def test_the_picked_user_survives_page_switches(tiny_artifacts, monkeypatch):
    at = run_page("app.py", monkeypatch, tiny_artifacts)
    picked = at.selectbox(key="_pick_user").options[5]
    at.selectbox(key="_pick_user").select(picked).run()
    for page in ("pages/1_Overview.py", "pages/3_Retrieval.py", "app.py", "pages/6_Embeddings.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert at.selectbox(key="_pick_user").value == picked, page
        assert at.selectbox(key="_pick_run").value == "tiny", page
