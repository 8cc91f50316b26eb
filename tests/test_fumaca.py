"""O teste de fumaça (ferramentas/fumaca.sh) e os pesos sorteados nunca escrevem no espelho de verdade.

Um "espelho de verdade" de mentira, numa pasta temporária, tem `openai-community/gpt2/model.safetensors` com bytes
conhecidos (no lugar dos 498 MB do GPT-2) e links para os dados de LLM_DADOS_ESPELHO: depois do teste de fumaça do
capítulo 03, tudo nele está igual, byte a byte.
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
import pesos_gpt2_sinteticos  # noqa: E402

from llm_do_zero import pretreino  # noqa: E402

PESOS_DE_VERDADE = b"os pesos de verdade do GPT-2 (um substituto de 498 MB)\n" * 1000


def espelho_dos_dados() -> Path:
    pasta = os.environ.get("LLM_DADOS_ESPELHO")
    if not pasta or not Path(pasta).is_dir():
        pytest.skip("precisa do espelho local dos dados (LLM_DADOS_ESPELHO)")
    return Path(pasta).resolve()


def espelho_de_verdade(pasta: Path, dados: Path | None = None) -> Path:
    """Um espelho como o do README: pesos do GPT-2 numa pasta `openai-community/` real e os dados ao lado."""
    pesos = pesos_gpt2_sinteticos.caminho_dos_pesos(pasta)
    pesos.parent.mkdir(parents=True)
    pesos.write_bytes(PESOS_DE_VERDADE)
    (pesos.parent / "config.json").write_text('{"n_layer": 12}\n')
    if dados is not None:
        for item in dados.iterdir():
            if item.name != "openai-community":
                (pasta / item.name).symlink_to(item)
    return pasta


def retrato(pasta: Path) -> dict[str, str]:
    """Tudo o que há em `pasta` (sem seguir links): arquivos pelo SHA-256, links pelo destino, pastas."""
    itens = {}
    for atual, pastas, arquivos in os.walk(pasta):
        for nome in pastas + arquivos:
            caminho = Path(atual) / nome
            chave = caminho.relative_to(pasta).as_posix()
            if caminho.is_symlink():
                itens[chave] = "link → " + os.readlink(caminho)
            elif caminho.is_dir():
                itens[chave] = "pasta"
            else:
                itens[chave] = hashlib.sha256(caminho.read_bytes()).hexdigest()
    return itens


def rodar_fumaca(espelho: Path, tmpdir: Path, *capitulos: str) -> subprocess.CompletedProcess:
    ambiente = {**os.environ, "LLM_DADOS_ESPELHO": str(espelho), "TIKTOKEN_CACHE_DIR": str(espelho / "tiktoken"),
                "TMPDIR": str(tmpdir), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ambiente.pop("LLM_ARTEFATOS", None)
    ambiente.pop("LLM_CACHE_DIR", None)
    return subprocess.run(["bash", str(RAIZ / "ferramentas" / "fumaca.sh"), *capitulos], capture_output=True,
                          text=True, env=ambiente, timeout=600, cwd=RAIZ)


def test_fumaca_do_03_deixa_o_espelho_de_verdade_intacto(tmp_path):
    """O caso do bug: com `openai-community/` no espelho de verdade, os pesos sorteados iam parar lá dentro."""
    espelho = espelho_de_verdade(tmp_path / "espelho-de-verdade", espelho_dos_dados())
    antes = retrato(espelho)
    (tmp_path / "tmp").mkdir()
    saida = rodar_fumaca(espelho, tmp_path / "tmp", "03-atencao")
    assert saida.returncode == 0, saida.stdout[-3000:] + saida.stderr[-3000:]
    assert "passed" in saida.stdout and "pesos aleatórios" in saida.stdout
    pesos = pesos_gpt2_sinteticos.caminho_dos_pesos(espelho)
    assert not pesos.is_symlink() and pesos.read_bytes() == PESOS_DE_VERDADE
    assert retrato(espelho) == antes
    sobras = [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("tmp.")]
    assert sobras == []                                              # a pasta do mktemp -d sumiu no fim


def test_fumaca_se_recusa_a_comecar_com_a_pasta_temporaria_dentro_do_espelho(tmp_path):
    """TMPDIR dentro do espelho de verdade: o espelho temporário ficaria dentro dele; nada começa, nada muda."""
    espelho = espelho_de_verdade(tmp_path / "espelho-de-verdade")
    (espelho / "tmp").mkdir()
    antes = retrato(espelho)
    saida = rodar_fumaca(espelho, espelho / "tmp", "03-atencao")
    assert saida.returncode != 0
    assert "Recusado" in saida.stderr and "não começou" in saida.stderr, saida.stderr
    assert "passed" not in saida.stdout
    assert retrato(espelho) == antes


def test_fumaca_sem_espelho_explica(tmp_path):
    ambiente = {k: v for k, v in os.environ.items() if k != "LLM_DADOS_ESPELHO"}
    saida = subprocess.run(["bash", str(RAIZ / "ferramentas" / "fumaca.sh"), "03-atencao"], capture_output=True,
                           text=True, env=ambiente, timeout=60)
    assert saida.returncode == 1 and "Defina LLM_DADOS_ESPELHO" in saida.stderr


@pytest.fixture
def gpt2_pequeno(monkeypatch):
    """Um "gpt2" de brinquedo (os mesmos nomes de pesos, formatos pequenos), para escrever rápido."""
    pytest.importorskip("safetensors")
    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 16, "n_layers": 2, "n_heads": 2})


def test_montar_espelho_recria_as_pastas_e_so_liga_arquivos(tmp_path):
    origem = espelho_de_verdade(tmp_path / "origem")
    (origem / "machado").mkdir()
    (origem / "machado" / "livro.txt").write_text("Capitu")
    (tmp_path / "fora").mkdir()
    (tmp_path / "fora" / "a.txt").write_text("a")
    (origem / "pasta-ligada").symlink_to(tmp_path / "fora")          # um link de pasta na origem
    (origem / "machado" / "ciclo").symlink_to(origem)               # e um ciclo
    espelho = pesos_gpt2_sinteticos.montar_espelho(origem, tmp_path / "espelho",
                                                   sem=("openai-community/gpt2/model.safetensors",))
    pastas = [p for p in espelho.rglob("*") if p.is_dir()]
    assert pastas and not any(p.is_symlink() for p in pastas)       # nenhuma pasta é link
    assert (espelho / "machado" / "livro.txt").resolve() == (origem / "machado" / "livro.txt").resolve()
    assert (espelho / "pasta-ligada" / "a.txt").is_symlink() and not (espelho / "pasta-ligada").is_symlink()
    assert (espelho / "openai-community" / "gpt2" / "config.json").is_symlink()
    assert not os.path.lexists(pesos_gpt2_sinteticos.caminho_dos_pesos(espelho))
    assert not (espelho / "machado" / "ciclo").exists()


def test_montar_espelho_recusa_pasta_dentro_da_origem(tmp_path):
    origem = espelho_de_verdade(tmp_path / "origem")
    antes = retrato(origem)
    with pytest.raises(pesos_gpt2_sinteticos.ForaDaPasta, match="se sobrepõem"):
        pesos_gpt2_sinteticos.montar_espelho(origem, origem / "tmp" / "espelho")
    assert retrato(origem) == antes


def test_pesos_recusam_pasta_que_e_link_para_fora(tmp_path, gpt2_pequeno, monkeypatch, capsys):
    """O bug antigo, direto na ferramenta: `openai-community` é um link para o espelho de verdade."""
    verdade = espelho_de_verdade(tmp_path / "verdade")
    antes = retrato(verdade)
    espelho = tmp_path / "espelho"
    espelho.mkdir()
    (espelho / "openai-community").symlink_to(verdade / "openai-community")
    sorteios = []
    monkeypatch.setattr(pesos_gpt2_sinteticos, "pesos_sinteticos", lambda *a: sorteios.append(a) or {})
    with pytest.raises(pesos_gpt2_sinteticos.ForaDaPasta, match="fora de") as recusa:
        pesos_gpt2_sinteticos.escrever(espelho, "gpt2")
    assert recusa.value.code != 0 and "Nada foi escrito" in str(recusa.value)
    assert sorteios == [] and retrato(verdade) == antes              # recusou antes de sortear e de escrever
    assert pesos_gpt2_sinteticos.main([str(espelho)]) == 1           # pela linha de comando: código 1 e o motivo
    assert "Recusado" in capsys.readouterr().err
    assert retrato(verdade) == antes


def test_pesos_apagam_o_link_no_lugar_do_arquivo_e_gravam_um_novo(tmp_path, gpt2_pequeno):
    verdade = espelho_de_verdade(tmp_path / "verdade")
    espelho = tmp_path / "espelho"
    destino = pesos_gpt2_sinteticos.caminho_dos_pesos(espelho)
    destino.parent.mkdir(parents=True)
    destino.symlink_to(pesos_gpt2_sinteticos.caminho_dos_pesos(verdade))
    assert pesos_gpt2_sinteticos.escrever(espelho, "gpt2") == destino
    assert not destino.is_symlink() and destino.is_file()
    pretreino._check_gpt2_safetensors(destino, "gpt2")
    assert pesos_gpt2_sinteticos.caminho_dos_pesos(verdade).read_bytes() == PESOS_DE_VERDADE
    assert sorted(p.name for p in destino.parent.iterdir()) == ["model.safetensors"]   # sem `.part` sobrando


def test_executar_grava_o_notebook_de_forma_atomica(tmp_path, monkeypatch):
    """Os mesmos bytes do nbformat.write; uma falha no meio da gravação deixa o notebook antigo inteiro."""
    import nbformat

    import executar
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, tmp_path / "esperado.ipynb")
    caminho = tmp_path / "notebook.ipynb"
    caminho.write_text("antigo")
    executar.gravar(nb, caminho)
    assert caminho.read_bytes() == (tmp_path / "esperado.ipynb").read_bytes()

    def quebra(*_):
        raise OSError("disco cheio")
    monkeypatch.setattr(executar.nbformat, "write", quebra)
    with pytest.raises(OSError, match="disco cheio"):
        executar.gravar(nbformat.v4.new_notebook(), caminho)
    assert caminho.read_bytes() == (tmp_path / "esperado.ipynb").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esperado.ipynb", "notebook.ipynb"]   # sem `.part`
