"""A ferramenta que mede o modo completo numa GPU (ferramentas/medir_completo.py), ensaiada na CPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import medir_completo  # noqa: E402


def test_pico_da_gpu_e_o_maior_valor_lido_do_nvidia_smi(tmp_path, monkeypatch):
    """Um `nvidia-smi` de mentira devolve 1000, 3000 e 2000 MiB (duas GPUs na última leitura): o pico é 3000 MiB."""
    leituras = tmp_path / "leituras"
    leituras.write_text("1000\n3000\n2000 1500\n")
    falso = tmp_path / "nvidia-smi"
    falso.write_text(f"#!/bin/sh\nlinha=$(head -n 1 {leituras})\n[ -n \"$linha\" ] && sed -i 1d {leituras}\n"
                     "echo ${linha:-0}\n")
    falso.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    vigia = medir_completo.PicoDaGPU(intervalo=0.01)
    assert vigia.disponivel
    for _ in range(4):
        vigia._vigiar_uma_vez()
    assert vigia.pico_gb == 3000 / 1024


def test_sem_nvidia_smi_nao_ha_pico(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with medir_completo.PicoDaGPU() as vigia:
        pass
    assert not vigia.disponivel and vigia.pico_gb is None


def test_ensaio_na_cpu_grava_resultados_e_tabela_sem_tocar_nos_versionados(tmp_path):
    """O capítulo 00 no modo completo, com LLM_FUMACA=1: o notebook roda, o registro e a tabela ficam em SAIDA."""
    versionados = sorted((RAIZ / "artefatos" / "resultados").glob("*.json"))
    antes = {p: p.read_bytes() for p in versionados}
    ambiente = {**os.environ, "LLM_FUMACA": "1"}
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "medir_completo.py"), "00", "--saida",
                            str(tmp_path)], capture_output=True, text=True, env=ambiente, timeout=600)
    assert saida.returncode == 0, saida.stdout + saida.stderr
    registro = json.loads((tmp_path / "resultados" / "completo" / "00-oficina.json").read_text(encoding="utf-8"))
    assert registro["modo"] == "completo" and registro["fumaca"] is True and registro["tempo_notebook_s"] > 0
    tabela = (tmp_path / "resultados" / "completo" / "medicao.md").read_text(encoding="utf-8")
    assert "| 00-oficina | ok |" in tabela and "acurácia de teste nas espirais" in tabela
    assert "LLM_FUMACA=1" in tabela and "| 00-oficina | ok |" in saida.stdout
    assert {p: p.read_bytes() for p in versionados} == antes



def notebook_de_teste(raiz: Path, *fontes: str) -> str:
    pasta = raiz / "99-teste"
    pasta.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f) for f in fontes]),
                   pasta / "notebook.ipynb")
    return pasta.name


def test_o_prazo_interrompe_o_notebook_e_a_situacao_diz_por_que(tmp_path, monkeypatch):
    """Um notebook que dormiria 120 s é interrompido pelo prazo de 8 s (Ctrl-C no kernel), não pelo teto da célula."""
    capitulo = notebook_de_teste(tmp_path, "x = 1", "import time\ntime.sleep(120)")
    monkeypatch.setattr(medir_completo, "RAIZ", tmp_path)
    situacao, segundos, _ = medir_completo.rodar_capitulo(capitulo, tempo_limite=600, prazo=8)
    assert situacao.startswith("interrompido: acabou o orçamento") and 8 <= segundos < 60


def test_notebook_que_cabe_no_prazo_termina_ok(tmp_path, monkeypatch):
    capitulo = notebook_de_teste(tmp_path, "x = 1", "assert x == 1")
    monkeypatch.setattr(medir_completo, "RAIZ", tmp_path)
    situacao, segundos, _ = medir_completo.rodar_capitulo(capitulo, tempo_limite=600, prazo=120)
    assert situacao == "ok" and segundos < 60


def test_sem_orcamento_os_capitulos_nao_rodam_e_a_tabela_diz(tmp_path):
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "medir_completo.py"), "00", "01", "--saida",
                            str(tmp_path), "--orcamento", "0"], capture_output=True, text=True, timeout=300)
    assert saida.returncode == 1, saida.stdout + saida.stderr
    tabela = (tmp_path / "resultados" / "completo" / "medicao.md").read_text(encoding="utf-8")
    assert tabela.count("não rodou: acabou o orçamento de 0 s") == 2
    assert not (tmp_path / "resultados" / "completo" / "00-oficina.json").exists()


def test_ajuda_documenta_as_variaveis_para_rodar_sem_internet():
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "medir_completo.py"), "--help"],
                           capture_output=True, text=True, timeout=120)
    assert saida.returncode == 0
    for variavel in ("LLM_DADOS_ESPELHO", "TIKTOKEN_CACHE_DIR", "LLM_CACHE_DIR", "LLM_FUMACA", "--pesos-sinteticos"):
        assert variavel in saida.stdout


def isolar_ambiente(monkeypatch, tmp_path: Path) -> Path:
    """A ferramenta muda os.environ; o monkeypatch devolve tudo no fim. Temporárias dela vão para tmp_path/tmp."""
    for variavel in ("LLM_MODO", "LLM_ARTEFATOS", "LLM_CACHE_DIR", "LLM_DADOS_ESPELHO", "TIKTOKEN_CACHE_DIR",
                     "MPLBACKEND", "PYTHONUNBUFFERED", "LLM_FUMACA"):
        monkeypatch.delenv(variavel, raising=False)
    temporarias = tmp_path / "tmp"
    temporarias.mkdir()
    monkeypatch.setattr(medir_completo.tempfile, "tempdir", str(temporarias))
    return temporarias


def test_pesos_sinteticos_sem_espelho_explica_em_vez_de_quebrar(tmp_path, monkeypatch, capsys):
    """Sem LLM_DADOS_ESPELHO (e sem dados-cache/): erro de uso claro, código 2, nada criado em SAIDA."""
    isolar_ambiente(monkeypatch, tmp_path)
    monkeypatch.setattr(medir_completo, "RAIZ", tmp_path)            # um repositório sem dados-cache/
    for valor in (None, str(tmp_path / "nao-existe")):
        if valor is not None:
            monkeypatch.setenv("LLM_DADOS_ESPELHO", valor)
        with pytest.raises(SystemExit) as saida:
            medir_completo.main(["00", "--pesos-sinteticos", "--saida", str(tmp_path / "saida")])
        assert saida.value.code == 2
        erro = capsys.readouterr().err
        assert "--pesos-sinteticos precisa do espelho dos dados" in erro and "LLM_DADOS_ESPELHO" in erro
        assert "Traceback" not in erro
    assert not (tmp_path / "saida").exists()


def test_execucao_com_pesos_sinteticos_nao_deixa_checkpoint_nem_toca_no_espelho(tmp_path, monkeypatch):
    """Um notebook grava um checkpoint em LLM_ARTEFATOS e confere os pesos sorteados: o checkpoint some com a
    pasta temporária, só o resultado fica em SAIDA, e o espelho de verdade (com `openai-community/`) não muda."""
    pytest.importorskip("safetensors")
    from llm_do_zero import pretreino
    from test_fumaca import PESOS_DE_VERDADE, espelho_de_verdade, retrato

    temporarias = isolar_ambiente(monkeypatch, tmp_path)
    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 16, "n_layers": 2, "n_heads": 2})
    espelho = espelho_de_verdade(tmp_path / "espelho-de-verdade")
    (espelho / "tiktoken").mkdir()
    (espelho / "tiktoken" / "abc").write_text("bpe")
    antes = retrato(espelho)
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(espelho))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(espelho / "tiktoken"))
    capitulo = notebook_de_teste(tmp_path, """
import json, os
from pathlib import Path
pesos = Path(os.environ["LLM_DADOS_ESPELHO"]) / "openai-community" / "gpt2" / "model.safetensors"
assert pesos.is_file() and not pesos.is_symlink() and pesos.read_bytes()[:8] != b"os pesos"
tiktoken = Path(os.environ["TIKTOKEN_CACHE_DIR"])
(tiktoken / "novo").write_text("gravado pelo tiktoken")
artefatos = Path(os.environ["LLM_ARTEFATOS"])
(artefatos / "checkpoints").mkdir(parents=True)
(artefatos / "checkpoints" / "06-finetuning-completo.pt").write_bytes(b"treinado sobre pesos sorteados")
(artefatos / "resultados").mkdir()
(artefatos / "resultados" / "99-teste.json").write_text(json.dumps(
    {"capitulo": "99-teste", "modo": "completo", "metricas": {"acuracia": 0.5}}))
""")
    monkeypatch.setattr(medir_completo, "RAIZ", tmp_path)
    monkeypatch.setattr(medir_completo, "escolher", lambda pedidos: [capitulo])
    saida = tmp_path / "saida"
    assert medir_completo.main(["--pesos-sinteticos", "--saida", str(saida)]) == 0
    registro = json.loads((saida / "resultados" / "completo" / "99-teste.json").read_text(encoding="utf-8"))
    assert registro["pesos_gpt2_sinteticos"] is True
    assert "| 99-teste | ok |" in (saida / "resultados" / "completo" / "medicao.md").read_text(encoding="utf-8")
    assert not (saida / "completo").exists()                         # nenhum checkpoint onde uma medição o acharia
    assert list(temporarias.iterdir()) == []                         # a pasta temporária sumiu
    assert retrato(espelho) == antes
    assert (espelho / "openai-community" / "gpt2" / "model.safetensors").read_bytes() == PESOS_DE_VERDADE


def test_agrupar_respeita_a_ordem_e_o_orcamento():
    segundos = {"a": 100, "b": 200, "c": 300, "d": 900, "e": 50}
    grupos = medir_completo.agrupar(list(segundos), segundos, orcamento=500, folga=1.0)
    assert grupos == [["a", "b"], ["c"], ["d"], ["e"]]             # d sozinho não cabe, mas fica num grupo só dele
    assert [c for g in grupos for c in g] == list(segundos)
    assert medir_completo.agrupar(["a", "b"], segundos, orcamento=500) == [["a", "b"]]   # 300 <= 0,85 x 500


def test_grupos_mostra_os_comandos_sem_rodar_nada(tmp_path):
    ambiente = {**os.environ, "LLM_DADOS_ESPELHO": str(RAIZ.parent / "shared" / "dados")}
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "medir_completo.py"), "--grupos",
                            "--aceleracao", "3", "--saida", str(tmp_path)], capture_output=True, text=True,
                           env=ambiente, timeout=300)
    assert saida.returncode == 0, saida.stdout + saida.stderr
    assert "--grupo 1 --aceleracao 3 --orcamento 570" in saida.stdout
    capitulos = [c.strip() for linha in saida.stdout.splitlines() if linha.strip()[:2].rstrip(".").isdigit()
                 for c in linha.split(":", 1)[0].split(". ", 1)[1].split(",")]
    assert capitulos == [c for c in medir_completo.escolher([])]      # todos, cada um uma vez, na ordem
    assert not any(tmp_path.iterdir())                                # nada gravado


def test_grupo_inexistente_e_aceleracao_invalida_sao_erros_de_uso(capsys):
    for argv, trecho in ((["00", "--grupo", "5"], "--grupo 5 não existe"),
                         (["--grupos", "--aceleracao", "0"], "--aceleracao precisa ser um número positivo")):
        with pytest.raises(SystemExit) as saida:
            medir_completo.main(argv)
        assert saida.value.code == 2 and trecho in capsys.readouterr().err
