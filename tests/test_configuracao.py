"""A célula de configuração e a publicação de uma versão.

A célula gerada roda aqui de verdade, com o git de verdade, contra repositórios git locais (bare) criados pelo teste
numa pasta temporária: um com a etiqueta da versão, um sem ela, um com o layout antigo do curso (sem a pasta do
capítulo) e um endereço que não existe (como sem internet). Nada vai para a rede. Também: achar o curso já baixado,
recuperar de uma tentativa que parou no meio, o Google Drive no Colab, o `--escrever`/`--check` de
`configuracao.py` e o `publicar.py`, que nunca roda `git push`.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import publicar  # noqa: E402
from configuracao import (  # noqa: E402
    REPOSITORIO,
    botao_colab,
    celula_configuracao,
    endereco_colab,
    main,
    versao_do_curso,
)

CAPITULO = "05-pretreino"
VERSAO = "2026.12"    # uma versão publicada (etiqueta); a do repositório pode ser "main", ainda sem etiqueta
COPIA = f"fazendo-um-llm-do-zero-{VERSAO}"            # a pasta onde a célula clona o curso
# o git destes testes não lê a configuração da máquina nem pede senha
GIT_ISOLADO = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
               "GIT_AUTHOR_NAME": "teste", "GIT_AUTHOR_EMAIL": "teste@exemplo", "GIT_COMMITTER_NAME": "teste",
               "GIT_COMMITTER_EMAIL": "teste@exemplo"}


def git(*argumentos, cwd):
    subprocess.run(["git", *argumentos], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ISOLADO})


def criar_curso(pasta: Path, versao: str = VERSAO, origem: str = "etiqueta") -> Path:
    """Uma cópia mínima do curso no layout de agora; `origem` diz de que ref ela veio."""
    (pasta / "ferramentas").mkdir(parents=True)
    (pasta / "ferramentas" / "exportar.py").write_text("")
    (pasta / CAPITULO).mkdir()
    (pasta / CAPITULO / "origem.txt").write_text(origem)
    (pasta / "VERSAO").write_text(versao + "\n")
    return pasta


def repositorio_bare(pasta: Path, preparar) -> str:
    """Cria um repositório de trabalho com `preparar(trabalho)` e devolve o endereço file:// de um clone bare dele."""
    trabalho = pasta / "trabalho"
    trabalho.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=trabalho)
    preparar(trabalho)
    git("clone", "-q", "--bare", str(trabalho), str(pasta / "curso.git"), cwd=pasta)
    return (pasta / "curso.git").as_uri()


def commit(trabalho: Path, mensagem: str):
    git("add", "-A", cwd=trabalho)
    git("commit", "-q", "-m", mensagem, cwd=trabalho)


@pytest.fixture(scope="session")
def repositorios(tmp_path_factory):
    """Os endereços dos repositórios locais: com a etiqueta, sem ela e com o layout antigo."""
    raiz = tmp_path_factory.mktemp("repositorios")

    def com_etiqueta(trabalho):
        criar_curso(trabalho, origem="etiqueta")
        commit(trabalho, "versão publicada")
        git("tag", "-a", VERSAO, "-m", VERSAO, cwd=trabalho)
        (trabalho / CAPITULO / "origem.txt").write_text("main")       # o main andou depois da etiqueta
        commit(trabalho, "trabalho depois da versão")

    def sem_etiqueta(trabalho):
        criar_curso(trabalho, origem="main")
        commit(trabalho, "ainda sem versão publicada")

    def antigo(trabalho):                                              # como o GitHub público antes do curso novo
        (trabalho / "00-passo-zero").mkdir()
        (trabalho / "00-passo-zero" / "README.md").write_text("layout antigo")
        commit(trabalho, "layout antigo")

    return {nome: repositorio_bare(raiz / nome, preparar)
            for nome, preparar in (("com_etiqueta", com_etiqueta), ("sem_etiqueta", sem_etiqueta),
                                   ("antigo", antigo))} | {"sem_rede": (raiz / "nao-existe.git").as_uri()}


@pytest.fixture
def rodar(monkeypatch):
    """Executa a célula como o Jupyter faria; devolve os comandos que ela rodou (git clone, pip)."""
    chamadas = []
    monkeypatch.setattr(sys, "path", list(sys.path))
    for variavel, valor in GIT_ISOLADO.items():
        monkeypatch.setenv(variavel, valor)
    run_verdadeiro = subprocess.run

    def run_anotado(argumentos, *a, **k):
        chamadas.append(list(argumentos))
        return run_verdadeiro(argumentos, *a, **k)

    def executar(repositorio=REPOSITORIO, codigo=None):
        monkeypatch.setattr(subprocess, "run", run_anotado)
        try:
            exec(codigo or celula_configuracao(CAPITULO, VERSAO, repositorio=repositorio), {"__name__": "__main__"})
        finally:
            monkeypatch.setattr(subprocess, "run", run_verdadeiro)
        return [c for c in chamadas if c[:2] == ["git", "clone"]]

    return executar


def erro_da_celula(rodar, repositorio):
    """Roda a célula esperando que ela pare; devolve a mensagem do erro (que deve ser a explicada, não outra)."""
    with pytest.raises(Exception) as erro:
        rodar(repositorio)
    assert type(erro.value).__name__ == "ErroNaConfiguracao", erro.value
    assert erro.value._render_traceback_() == [f"Erro na configuração: {erro.value}"]
    return str(erro.value)


def sem_sobras(pasta: Path):
    assert not (pasta / COPIA).exists() and not (pasta / f"{COPIA}.baixando").exists()


# --- uma versão só: notebook, botão e código clonado ---------------------------------------------------------

def test_notebook_botao_e_clone_nomeiam_a_mesma_versao():
    versao = versao_do_curso()                            # a do repositório: uma etiqueta, ou "main" antes dela
    celula = celula_configuracao(CAPITULO)
    assert f'VERSAO = "{versao}"' in celula and f'REPOSITORIO = "{REPOSITORIO}"' in celula
    assert '"--branch", ref' in celula and "clonar(VERSAO," in celula
    dono_e_nome = REPOSITORIO.removeprefix("https://github.com/")
    assert endereco_colab(CAPITULO) == (f"https://colab.research.google.com/github/{dono_e_nome}/blob/{versao}/"
                                        f"{CAPITULO}/notebook.ipynb")
    assert botao_colab(CAPITULO).endswith(f"({endereco_colab(CAPITULO)})")


def test_notebooks_e_readmes_estao_em_dia():
    """Falha até alguém rodar `python ferramentas/configuracao.py --escrever` depois de mudar a célula ou VERSAO."""
    assert main(["--check"]) == 0


# --- o curso já está no disco -------------------------------------------------------------------------------

@pytest.mark.parametrize("onde", ["raiz", "capitulo", "outro capitulo"])
def test_acha_o_curso_sem_clonar_de_novo(tmp_path, monkeypatch, capsys, rodar, onde):
    curso = criar_curso(tmp_path / "repo")
    (curso / "02-tokens").mkdir()
    monkeypatch.chdir({"raiz": curso, "capitulo": curso / CAPITULO, "outro capitulo": curso / "02-tokens"}[onde])
    assert rodar() == []                                   # nada de git clone: o Jupyter aberto na raiz também
    assert Path.cwd() == curso / CAPITULO and sys.path[0] == str(curso / CAPITULO)
    assert rodar() == [] and Path.cwd() == curso / CAPITULO        # rodar de novo não muda nada
    assert sys.path.count(str(curso / CAPITULO)) == 1
    saida = capsys.readouterr().out
    assert "Aviso" not in saida and f"Capítulo {CAPITULO} | curso {VERSAO} |" in saida and "dispositivo:" in saida


def test_copia_de_outra_versao_recebe_o_caminho_para_atualizar(tmp_path, monkeypatch, capsys, rodar):
    criar_curso(tmp_path / "repo", versao="2000.01")
    monkeypatch.chdir(tmp_path / "repo")
    assert rodar() == []
    saida = capsys.readouterr().out
    assert "2000.01" in saida and VERSAO in saida and "git -C" in saida


# --- clonar contra repositórios locais ------------------------------------------------------------------------

def test_com_a_etiqueta_clona_a_versao_do_notebook(tmp_path, monkeypatch, capsys, rodar, repositorios):
    monkeypatch.chdir(tmp_path)
    clones = rodar(repositorios["com_etiqueta"])
    assert len(clones) == 1 and clones[0][clones[0].index("--branch") + 1] == VERSAO
    assert Path.cwd() == tmp_path / COPIA / CAPITULO
    assert (tmp_path / COPIA / CAPITULO / "origem.txt").read_text() == "etiqueta"     # não o main
    assert not (tmp_path / f"{COPIA}.baixando").exists()
    assert "não está publicada" not in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)                            # o Colab depois de reiniciar a sessão
    assert rodar(repositorios["com_etiqueta"]) == clones   # acha a cópia baixada, nada de clone novo


def test_sem_a_etiqueta_baixa_a_mais_recente_e_avisa(tmp_path, monkeypatch, capsys, rodar, repositorios):
    monkeypatch.chdir(tmp_path)
    clones = rodar(repositorios["sem_etiqueta"])
    assert len(clones) == 2 and "--branch" in clones[0] and "--branch" not in clones[1]
    assert "não está publicada" in capsys.readouterr().out
    assert Path.cwd() == tmp_path / COPIA / CAPITULO
    assert (tmp_path / COPIA / CAPITULO / "origem.txt").read_text() == "main"


def test_layout_antigo_sem_o_capitulo_explica_e_nao_deixa_sobras(tmp_path, monkeypatch, rodar, repositorios):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):                                     # rodar de novo dá a mesma mensagem, não outro erro
        mensagem = erro_da_celula(rodar, repositorios["antigo"])
        assert f"não tem a pasta {CAPITULO}" in mensagem and "botão do Colab" in mensagem
        assert Path.cwd() == tmp_path
        sem_sobras(tmp_path)
    rodar(repositorios["com_etiqueta"])                    # publicada a versão, a mesma célula funciona
    assert Path.cwd() == tmp_path / COPIA / CAPITULO


def test_sem_rede_explica_e_a_proxima_tentativa_funciona(tmp_path, monkeypatch, rodar, repositorios):
    monkeypatch.chdir(tmp_path)
    mensagem = erro_da_celula(rodar, repositorios["sem_rede"])
    assert "não consegui baixar o curso" in mensagem and "internet" in mensagem and "o git disse: " in mensagem
    sem_sobras(tmp_path)
    rodar(repositorios["com_etiqueta"])                    # a conexão voltou: rodar a célula de novo basta
    assert Path.cwd() == tmp_path / COPIA / CAPITULO


def test_tentativa_anterior_pela_metade_e_apagada(tmp_path, monkeypatch, rodar, repositorios):
    meia = tmp_path / f"{COPIA}.baixando"                  # um clone interrompido (kernel reiniciado, queda de rede)
    git("init", "-q", str(meia), cwd=tmp_path)
    (meia / CAPITULO).mkdir()
    (meia / CAPITULO / "pela-metade.txt").write_text("")
    velha = tmp_path / "fazendo-um-llm-do-zero"            # o clone no lugar que a célula de antes fazia
    git("init", "-q", str(velha), cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    rodar(repositorios["com_etiqueta"])
    assert Path.cwd() == tmp_path / COPIA / CAPITULO
    assert not meia.exists() and not (Path.cwd() / "pela-metade.txt").exists()
    assert (velha / ".git").is_dir()                       # a pasta de antes não é desta célula: fica como está


def test_copia_incompleta_no_lugar_da_nova_diz_o_que_fazer(tmp_path, monkeypatch, rodar, repositorios):
    criar_curso(tmp_path / COPIA)
    shutil.rmtree(tmp_path / COPIA / CAPITULO)             # alguém apagou o capítulo da cópia baixada
    monkeypatch.chdir(tmp_path)
    mensagem = erro_da_celula(rodar, repositorios["com_etiqueta"])
    assert f"rm -rf {tmp_path / COPIA}" in mensagem
    shutil.rmtree(tmp_path / COPIA)                        # o que a mensagem manda fazer
    rodar(repositorios["com_etiqueta"])
    assert Path.cwd() == tmp_path / COPIA / CAPITULO


def test_sem_git_explica(tmp_path, monkeypatch, rodar):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda programa: None)
    assert "é preciso o git" in erro_da_celula(rodar, REPOSITORIO)


def test_instalacao_que_falha_explica(tmp_path, monkeypatch, rodar):
    import importlib.util
    criar_curso(tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    procurar = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda nome, *a: None if nome == "tqdm" else procurar(nome, *a))
    instalar = []
    run_verdadeiro = subprocess.run

    def pip_sem_rede(argumentos, *a, **k):
        instalar.append(argumentos)
        return subprocess.CompletedProcess(argumentos, 1)

    monkeypatch.setattr(subprocess, "run", pip_sem_rede)
    with pytest.raises(Exception, match="não consegui instalar tqdm"):
        exec(celula_configuracao(CAPITULO), {"__name__": "__main__"})
    monkeypatch.setattr(subprocess, "run", run_verdadeiro)
    assert instalar == [[sys.executable, "-m", "pip", "install", "-q", "tqdm"]]     # só o que falta


def test_no_jupyter_o_erro_aparece_sem_rastreamento(tmp_path, repositorios):
    """No IPython (o kernel do Jupyter e do Colab), o erro da célula é uma mensagem curta, sem traceback."""
    pytest.importorskip("IPython")
    roteiro = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
               "r = InteractiveShell.instance().run_cell(sys.stdin.read())\n"
               "print('ERRO:', type(r.error_in_exec).__name__)\n")
    saida = subprocess.run([sys.executable, "-c", roteiro], cwd=tmp_path, capture_output=True, text=True,
                           input=celula_configuracao(CAPITULO, VERSAO, repositorio=repositorios["antigo"]),
                           env={**os.environ, **GIT_ISOLADO}, timeout=60).stdout
    assert f"Erro na configuração: o curso baixado de {repositorios['antigo']} não tem a pasta {CAPITULO}" in saida
    assert "Traceback" not in saida and "ERRO: ErroNaConfiguracao" in saida


# --- Google Drive no Colab ------------------------------------------------------------------------------------

def test_no_colab_guarda_artefatos_e_downloads_no_drive(tmp_path, monkeypatch, rodar):
    criar_curso(tmp_path / "repo")
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
    rodar(codigo=codigo)                                   # com a opção desligada, nada de Drive
    assert montados == [] and "LLM_ARTEFATOS" not in os.environ
    rodar(codigo=codigo.replace("GUARDAR_NO_DRIVE = False", "GUARDAR_NO_DRIVE = True"))
    assert montados == ["/content/drive"]
    no_drive = "/content/drive/MyDrive/fazendo-um-llm-do-zero"
    assert os.environ["LLM_ARTEFATOS"] == f"{no_drive}/artefatos"
    assert os.environ["LLM_CACHE_DIR"] == f"{no_drive}/dados-cache"


def test_fora_do_colab_a_opcao_do_drive_so_avisa(tmp_path, monkeypatch, capsys, rodar):
    criar_curso(tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    antes = os.environ.get("LLM_ARTEFATOS")
    rodar(codigo=celula_configuracao(CAPITULO).replace("GUARDAR_NO_DRIVE = False", "GUARDAR_NO_DRIVE = True"))
    assert "só vale no Colab" in capsys.readouterr().out and os.environ.get("LLM_ARTEFATOS") == antes


# --- configuracao.py --escrever / --check e publicar.py, num curso de mentira -----------------------------------

def _linhas(texto):
    return texto.splitlines(keepends=True)


def curso_de_mentira(raiz: Path, versao: str = "2026.12") -> Path:
    """Dois capítulos com a célula e os botões de antes (no main), um README e um links.md."""
    (raiz / "VERSAO").write_text(versao + "\n")
    colab = "https://colab.research.google.com/github/vongrossi/fazendo-um-llm-do-zero/blob/main"
    for capitulo in ("00-oficina", "01-estatistica"):
        (raiz / capitulo).mkdir(parents=True)
        botao = f"[![Abrir no Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}/{capitulo}/notebook.ipynb)"
        nb = {"cells": [{"cell_type": "markdown", "id": "titulo", "metadata": {},
                         "source": _linhas(f"# Capítulo {capitulo}\n\n{botao}\n\nUma promessa.")},
                        {"cell_type": "code", "execution_count": 1, "id": "config", "metadata": {},
                         "outputs": [{"name": "stdout", "output_type": "stream", "text": ["Capítulo …\n"]}],
                         "source": _linhas("# a célula de antes\nprint(1)")},
                        {"cell_type": "markdown", "id": "fim", "metadata": {},
                         "source": _linhas("Veja também [o livro](https://colab.research.google.com/github/"
                                           "rasbt/LLMs-from-scratch/blob/main/ch02/x.ipynb).")}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (raiz / capitulo / "notebook.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        (raiz / capitulo / "README.md").write_text(f"# {capitulo}\n\n{botao}\n\nTexto.\n")
    (raiz / "links.md").write_text(f"| 00 | [abrir]({colab}/00-oficina/notebook.ipynb) |\n")
    return raiz


def _fotografia(raiz: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(raiz.rglob("*")) if p.is_file()}


def test_sem_opcao_so_mostra_a_celula_e_o_botao(tmp_path, capsys):
    raiz = curso_de_mentira(tmp_path)
    antes = _fotografia(raiz)
    assert main(["--capitulo", "01-estatistica"], raiz=raiz) == 0
    saida = capsys.readouterr().out
    assert botao_colab("01-estatistica", "2026.12") in saida
    assert celula_configuracao("01-estatistica", "2026.12") in saida
    assert _fotografia(raiz) == antes


def test_escrever_atualiza_celulas_e_botoes_e_check_confere(tmp_path, capsys):
    raiz = curso_de_mentira(tmp_path)
    antes = _fotografia(raiz)
    assert main(["--check"], raiz=raiz) == 1 and _fotografia(raiz) == antes       # --check não grava nada
    assert "00-oficina/notebook.ipynb" in capsys.readouterr().err
    assert main(["--escrever"], raiz=raiz) == 0
    assert main(["--check"], raiz=raiz) == 0
    for capitulo in ("00-oficina", "01-estatistica"):
        nb = json.loads((raiz / capitulo / "notebook.ipynb").read_text())
        assert "".join(nb["cells"][1]["source"]) == celula_configuracao(capitulo, "2026.12")
        assert botao_colab(capitulo, "2026.12") in "".join(nb["cells"][0]["source"])
        assert "rasbt/LLMs-from-scratch/blob/main/" in "".join(nb["cells"][2]["source"])   # só os do curso mudam
        assert nb["cells"][1]["outputs"][0]["text"] == ["Capítulo …\n"] and nb["cells"][1]["id"] == "config"
        assert botao_colab(capitulo, "2026.12") in (raiz / capitulo / "README.md").read_text()
    assert "/blob/2026.12/00-oficina/" in (raiz / "links.md").read_text()
    assert not list(raiz.rglob("*.gravando"))


def test_check_acusa_o_botao_que_falta(tmp_path, capsys):
    raiz = curso_de_mentira(tmp_path)
    leiame = raiz / "01-estatistica" / "README.md"
    leiame.write_text("# sem botão\n")
    assert main(["--escrever"], raiz=raiz) == 1
    assert "01-estatistica/README.md: falta o botão" in capsys.readouterr().err


def test_publicar_muda_a_versao_reescreve_e_so_mostra_os_comandos_do_git(tmp_path, monkeypatch, capsys):
    raiz = curso_de_mentira(tmp_path)
    comandos = []
    run_verdadeiro = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda argumentos, *a, **k: comandos.append(argumentos)
                        or run_verdadeiro(argumentos, *a, **k))
    assert publicar.main(["2027.01"], raiz=raiz) == 0
    assert comandos == [["git", "-C", str(raiz), "tag", "--list"]]   # só lê as etiquetas: nada de commit nem push
    assert versao_do_curso(raiz) == "2027.01" and main(["--check"], raiz=raiz) == 0
    nb = json.loads((raiz / "00-oficina" / "notebook.ipynb").read_text())
    assert 'VERSAO = "2027.01"' in "".join(nb["cells"][1]["source"])
    assert "/blob/2027.01/00-oficina/notebook.ipynb" in "".join(nb["cells"][0]["source"])
    saida = capsys.readouterr().out
    assert "git tag -a 2027.01" in saida and "git push --atomic origin main 2027.01" in saida
    assert "00-oficina/notebook.ipynb" in saida and "links.md" in saida              # no git add


def test_publicar_recusa_versao_ja_publicada_ou_mal_escrita(tmp_path, monkeypatch, capsys):
    raiz = curso_de_mentira(tmp_path)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    git("init", "-q", cwd=raiz)
    commit(raiz, "curso")
    git("tag", "2026.12", cwd=raiz)
    antes = _fotografia(raiz)
    assert publicar.main(["2026.12"], raiz=raiz, hoje=datetime.date(2026, 12, 7)) == 1
    erro = capsys.readouterr().err
    assert "já existe" in erro and "publicar.py 2026.12.1" in erro
    assert publicar.main(["26.1"], raiz=raiz) == 1 and "Versão inválida" in capsys.readouterr().err
    assert _fotografia(raiz) == antes


def test_publicar_propoe_a_versao_do_mes():
    assert publicar.proxima_versao(set(), datetime.date(2027, 1, 5)) == "2027.01"
    assert publicar.proxima_versao({"2026.12"}, datetime.date(2026, 12, 7)) == "2026.12.1"
    assert publicar.proxima_versao({"2026.12", "2026.12.1"}, datetime.date(2026, 12, 7)) == "2026.12.2"
