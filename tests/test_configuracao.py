"""A célula de configuração: acha o curso já baixado, baixa a versão registrada quando não acha, avisa quando a
cópia é de outra versão, é inofensiva ao rodar de novo e, no Colab, pode guardar artefatos no Google Drive."""
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from configuracao import celula_configuracao, main, versao_do_curso  # noqa: E402

CAPITULO = "05-pretreino"


def criar_curso(pasta: Path, versao: str) -> Path:
    (pasta / "ferramentas").mkdir(parents=True)
    (pasta / "ferramentas" / "exportar.py").write_text("")
    (pasta / CAPITULO).mkdir()
    (pasta / "VERSAO").write_text(versao + "\n")
    return pasta


@pytest.fixture
def rodar(monkeypatch):
    """Executa a célula como o Jupyter faria; devolve as chamadas a subprocess.run."""
    chamadas = []
    monkeypatch.setattr(sys, "path", list(sys.path))

    def executar(codigo=None, falha_na_etiqueta=False):
        def run_falso(argumentos, *a, **k):
            chamadas.append(argumentos)
            if argumentos[:2] == ["git", "clone"]:
                if falha_na_etiqueta and "--branch" in argumentos:
                    return subprocess.CompletedProcess(argumentos, 128)
                criar_curso(Path(argumentos[-1]), versao_do_curso())
            return subprocess.CompletedProcess(argumentos, 0)

        monkeypatch.setattr(subprocess, "run", run_falso)
        exec(codigo or celula_configuracao(CAPITULO), {"__name__": "__main__"})
        return chamadas

    return executar


def test_a_versao_vem_de_um_lugar_so_e_todos_os_notebooks_usam_a_celula():
    assert f'VERSAO = "{versao_do_curso()}"' in celula_configuracao(CAPITULO)
    assert main(["--check"]) == 0


@pytest.mark.parametrize("onde", ["raiz", "capitulo", "outro capitulo"])
def test_acha_o_curso_sem_clonar_de_novo(tmp_path, monkeypatch, capsys, rodar, onde):
    curso = criar_curso(tmp_path / "repo", versao_do_curso())
    (curso / "02-tokens").mkdir()
    monkeypatch.chdir({"raiz": curso, "capitulo": curso / CAPITULO, "outro capitulo": curso / "02-tokens"}[onde])
    assert rodar() == []                                   # nada de git clone: o Jupyter aberto na raiz também
    assert Path.cwd() == curso / CAPITULO and sys.path[0] == str(curso / CAPITULO)
    assert rodar() == [] and Path.cwd() == curso / CAPITULO        # rodar de novo não muda nada
    assert sys.path.count(str(curso / CAPITULO)) == 1
    assert "Aviso" not in capsys.readouterr().out


def test_sem_o_curso_clona_a_versao_registrada(tmp_path, monkeypatch, rodar):
    monkeypatch.chdir(tmp_path)
    chamadas = rodar()
    assert len(chamadas) == 1 and chamadas[0][:2] == ["git", "clone"]
    assert chamadas[0][chamadas[0].index("--branch") + 1] == versao_do_curso()
    assert Path.cwd() == tmp_path / "fazendo-um-llm-do-zero" / CAPITULO
    assert len(rodar()) == 1                               # na segunda vez, acha a cópia baixada


def test_versao_nao_publicada_baixa_a_mais_recente(tmp_path, monkeypatch, capsys, rodar):
    monkeypatch.chdir(tmp_path)
    chamadas = rodar(falha_na_etiqueta=True)
    assert len(chamadas) == 2 and "--branch" not in chamadas[1]
    assert "ainda não foi publicada" in capsys.readouterr().out
    assert Path.cwd() == tmp_path / "fazendo-um-llm-do-zero" / CAPITULO


def test_copia_antiga_recebe_o_caminho_para_atualizar(tmp_path, monkeypatch, capsys, rodar):
    criar_curso(tmp_path / "fazendo-um-llm-do-zero", "2000.01")
    monkeypatch.chdir(tmp_path)
    assert rodar() == []
    saida = capsys.readouterr().out
    assert "2000.01" in saida and versao_do_curso() in saida and "git -C" in saida


def test_no_colab_guarda_artefatos_e_downloads_no_drive(tmp_path, monkeypatch, rodar):
    criar_curso(tmp_path / "repo", versao_do_curso())
    monkeypatch.chdir(tmp_path / "repo")
    montados = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=montados.append)
    colab.__spec__ = types.SimpleNamespace(name="google.colab")
    google = types.ModuleType("google")
    google.__spec__ = types.SimpleNamespace(name="google")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    for variavel in ("LLM_ARTEFATOS", "LLM_CACHE_DIR"):     # o valor de antes volta no fim do teste
        monkeypatch.setenv(variavel, "")
        monkeypatch.delenv(variavel)
    codigo = celula_configuracao(CAPITULO)
    rodar(codigo)                                          # com a opção desligada, nada de Drive
    assert montados == [] and "LLM_ARTEFATOS" not in os.environ
    rodar(codigo.replace("GUARDAR_NO_DRIVE = False", "GUARDAR_NO_DRIVE = True"))
    assert montados == ["/content/drive"]
    no_drive = "/content/drive/MyDrive/fazendo-um-llm-do-zero"
    assert os.environ["LLM_ARTEFATOS"] == f"{no_drive}/artefatos"
    assert os.environ["LLM_CACHE_DIR"] == f"{no_drive}/dados-cache"


def test_fora_do_colab_a_opcao_do_drive_so_avisa(tmp_path, monkeypatch, capsys, rodar):
    criar_curso(tmp_path / "repo", versao_do_curso())
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    antes = os.environ.get("LLM_ARTEFATOS")
    rodar(celula_configuracao(CAPITULO).replace("GUARDAR_NO_DRIVE = False", "GUARDAR_NO_DRIVE = True"))
    assert "só vale no Colab" in capsys.readouterr().out and os.environ.get("LLM_ARTEFATOS") == antes
