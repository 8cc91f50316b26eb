"""O comando único dos mantenedores (ferramentas/refazer.py): plano, dependências e relatório, sem rodar notebooks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import refazer  # noqa: E402
from exportar import CAPITULOS  # noqa: E402


@pytest.fixture(scope="module")
def grafo():
    return refazer.grafo_de_dependencias()


def test_o_grafo_so_aponta_para_capitulos_anteriores(grafo):
    assert set(grafo) == set(CAPITULOS)
    for cap, usa in grafo.items():
        assert all(CAPITULOS.index(c) < CAPITULOS.index(cap) for c in usa), (cap, usa)
    assert grafo["00-oficina"] == set()


def test_o_grafo_segue_o_codigo_do_pacote(grafo):
    """06 importa do 05, e o módulo do 05 usa o tokenizador do 02: o 06 depende do 02 sem importá-lo."""
    assert {"00-oficina", "05-pretreino", "04-gpt", "02-tokens"} <= grafo["06-finetuning"]
    assert "03-atencao" in grafo["04-gpt"]                  # o GPTModel usa a MultiHeadAttention
    assert grafo["08-extras"] >= {"05-pretreino", "07-instrucoes"}


def test_refazer_05_planeja_05_a_08(grafo):
    assert refazer.plano(["05-pretreino"], grafo) == ["05-pretreino", "06-finetuning", "07-instrucoes", "08-extras"]


def test_refazer_02_planeja_quem_usa_os_tokens(grafo):
    assert refazer.plano(["02-tokens"], grafo) == ["02-tokens", "05-pretreino", "06-finetuning", "07-instrucoes",
                                                   "08-extras"]


def test_refazer_00_planeja_todos_e_a_ordem_e_a_do_curso(grafo):
    assert refazer.plano(["00-oficina"], grafo) == CAPITULOS
    assert refazer.plano(["08-extras", "03-atencao"], grafo) == ["03-atencao", "04-gpt", "05-pretreino",
                                                                "06-finetuning", "07-instrucoes", "08-extras"]
    assert refazer.plano(["07-instrucoes"], grafo) == ["07-instrucoes", "08-extras"]


def test_plano_nao_arrasta_quem_nao_usa_o_codigo_mudado():
    """Num grafo já fechado, 'C usa B e B usa A' aparece como C -> {A, B}; quem só usa B não entra por A."""
    grafo = {"00-oficina": set(), "01-estatistica": {"00-oficina"}, "03-atencao": {"00-oficina", "01-estatistica"},
             "04-gpt": {"00-oficina", "03-atencao"}}
    assert refazer.plano(["01-estatistica"], grafo) == ["01-estatistica", "03-atencao"]


def test_escolher_aceita_numero_e_nome_e_recusa_o_resto():
    assert refazer.escolher(["05", "06-finetuning/"]) == ["05-pretreino", "06-finetuning"]
    with pytest.raises(SystemExit, match="Capítulo desconhecido: '42'"):
        refazer.escolher(["42"])


def test_dry_run_mostra_plano_e_comandos_sem_rodar_nada():
    resultados = sorted((RAIZ / "artefatos" / "resultados").glob("*.json"))
    antes = {p: p.read_bytes() for p in resultados}
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "refazer.py"), "--dry-run", "05"],
                           capture_output=True, text=True, timeout=120, cwd=RAIZ)
    assert saida.returncode == 0, saida.stderr
    texto = saida.stdout
    assert "Plano: 05-pretreino, 06-finetuning, 07-instrucoes, 08-extras" in texto
    ordem = ["ferramentas/exportar.py", "executar.py 05-pretreino", "executar.py 06-finetuning",
             "executar.py 07-instrucoes", "executar.py 08-extras", "ferramentas/resultados.py",
             "conferir_resultados.py artefatos/resultados", "exportar.py --check", "resultados.py --check"]
    posicoes = [texto.index(trecho) for trecho in ordem]
    assert posicoes == sorted(posicoes)
    assert "nada foi executado" in texto
    assert {p: p.read_bytes() for p in resultados} == antes


def test_sem_capitulos_e_sem_opcao_e_erro_de_uso():
    saida = subprocess.run([sys.executable, str(RAIZ / "ferramentas" / "refazer.py")],
                           capture_output=True, text=True, timeout=120)
    assert saida.returncode == 2 and "diga quais capítulos mudaram" in saida.stderr


def test_o_verificador_externo_e_opcional(tmp_path):
    passos = refazer.comandos(["05-pretreino"], "COPIA", True, raiz=tmp_path)
    assert not any("verificar_curso" in " ".join(argv) for _, argv in passos)
    assert [d for d, _ in passos][:2] == ["exportar o pacote", "executar 05-pretreino"]
    assert not any(d == "guarda dos resultados" for d, _ in passos)        # sem resultado gravado, sem guarda
    sem_executar = [d for d, _ in refazer.comandos(["05-pretreino"], "COPIA", False, raiz=tmp_path)]
    assert not any(d.startswith("executar") for d in sem_executar)


def test_diferencas_dizem_antes_e_depois():
    antes = {"tempo_s": 10.0, "metricas": {"acuracia": 0.9, "lista": [1, 2], "nome": "a", "velha": 1}}
    depois = {"tempo_s": 12.5, "metricas": {"acuracia": 0.85, "lista": [1, 3], "nome": "a", "nova": 2}}
    linhas = refazer.diferencas(antes, depois)
    assert "tempo_s: 10 → 12.5" in linhas and "acuracia: 0.9 → 0.85" in linhas and "lista.1: 2 → 3" in linhas
    assert "velha: 1 → (sumiu)" in linhas and "nova: (nova) → 2" in linhas
    assert not any(linha.startswith("nome") for linha in linhas)
    assert refazer.diferencas(None, depois) == ["resultado novo (não havia antes)"]
    relatorio = refazer.relatorio_de_mudancas({"06-finetuning": antes}, {"06-finetuning": depois, "05-pretreino": {}},
                                              ["05-pretreino", "06-finetuning", "04-gpt"])
    assert "06-finetuning: 5 mudança(s)" in relatorio and "04-gpt: não grava resultados" in relatorio


def test_execucao_copia_os_resultados_de_antes_e_relata_o_que_mudou(tmp_path, monkeypatch, capsys):
    """Com passos de mentira (um 'notebook' que muda a acurácia), o relatório compara a cópia de antes com o novo."""
    resultados = tmp_path / "artefatos" / "resultados"
    resultados.mkdir(parents=True)
    registro = {"capitulo": "06-finetuning", "tempo_s": 1.0, "metricas": {"acuracia": 0.9}}
    (resultados / "06-finetuning.json").write_text(json.dumps(registro), encoding="utf-8")
    novo = json.dumps({**registro, "metricas": {"acuracia": 0.8}})
    vistos = []

    def comandos(capitulos, versionados, executar, raiz=None):
        vistos.append(sorted(p.name for p in Path(versionados).glob("*.json")))
        escrever = f"open({str(resultados / '06-finetuning.json')!r}, 'w').write({novo!r})"
        return [("executar 06-finetuning", [sys.executable, "-c", escrever]),
                ("conferir os números dos textos", [sys.executable, "-c", "raise SystemExit(1)"])]

    monkeypatch.setattr(refazer, "RAIZ", tmp_path)
    monkeypatch.setattr(refazer, "comandos", comandos)
    monkeypatch.setattr(refazer, "escolher", lambda pedidos: ["06-finetuning"])
    monkeypatch.setattr(refazer, "grafo_de_dependencias", lambda: {"06-finetuning": set()})
    assert refazer.main(["06"]) == 1                          # a conferência de mentira falhou
    texto = capsys.readouterr().out
    assert vistos == [["06-finetuning.json"]]
    assert "acuracia: 0.9 → 0.8" in texto and "Falharam: conferir os números dos textos" in texto
