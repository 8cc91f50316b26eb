#!/usr/bin/env python3
"""Escreve um `model.safetensors` do GPT-2 com pesos aleatórios, no formato exato do Hugging Face.

Serve para testar o caminho dos pesos do GPT-2 (espelho → cache → conferência do cabeçalho → carregamento estrito)
numa máquina sem acesso ao Hugging Face, com os formatos reais do tamanho escolhido (o `gpt2` tem 124 M de
parâmetros, ~0,5 GB). Os pesos são sorteados (N(0; 0,02); vieses em 0 e LayerNorms em 1): o modelo carrega e roda, mas
não sabe nada — os números que sairem dele não dizem nada sobre o GPT-2 de verdade.

O arquivo só é escrito dentro de PASTA: se `PASTA/openai-community/<tamanho>` (ou uma pasta no meio) for um link
que leva para fora de PASTA — por exemplo para o espelho ou o cache de verdade —, a ferramenta se recusa a começar
e sai com código 1, sem escrever nada. Um link no lugar do próprio `model.safetensors` é apagado (apagar um link
não toca no arquivo para onde ele aponta) e o arquivo novo é gravado num `.part` ao lado, renomeado no fim.

Com `--espelho-de ORIGEM`, PASTA vira primeiro um espelho temporário de ORIGEM montado sem links de pastas: as
pastas são recriadas de verdade dentro de PASTA e só os arquivos viram links (os pesos do tamanho pedido, se ORIGEM
os tiver, ficam de fora). Assim nenhuma escrita em PASTA segue um link de volta para ORIGEM; é o que
`ferramentas/fumaca.sh` e `ferramentas/medir_completo.py --pesos-sinteticos` usam.

Uso:
    python ferramentas/pesos_gpt2_sinteticos.py PASTA [--tamanho gpt2] [--semente 0] [--espelho-de ORIGEM]
    export LLM_DADOS_ESPELHO=PASTA      # o curso passa a achar PASTA/openai-community/gpt2/model.safetensors
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from llm_do_zero.pretreino import GPT2_SIZES, gpt2_expected_shapes  # noqa: E402


class ForaDaPasta(SystemExit):
    """Recusa: a escrita iria parar fora da pasta pedida (por um link). Sai com código 1 e a mensagem em stderr."""

    def __init__(self, mensagem: str):
        super().__init__(mensagem)
        self.mensagem = mensagem


def caminho_dos_pesos(pasta: Path, size: str = "gpt2") -> Path:
    """Onde o curso procura os pesos no espelho: PASTA/openai-community/<size>/model.safetensors."""
    return Path(pasta) / "openai-community" / size / "model.safetensors"


def _dentro(caminho: Path, raiz: Path) -> bool:
    """True se `caminho` (já resolvido) é `raiz` (já resolvida) ou fica dentro dela."""
    return caminho == raiz or raiz in caminho.parents


def conferir_dentro(pasta: Path, alvo: Path) -> None:
    """Recusa (ForaDaPasta) se a pasta de `alvo`, seguidos os links que já existem no caminho, sai de `pasta`.

    Confere cada pasta do caminho que já existe, de `pasta` até a pasta de `alvo`: nenhuma pode levar para fora
    de `pasta` (as que ainda não existem serão criadas de verdade, dentro da última que existe).
    """
    raiz = Path(pasta).resolve()
    alvo = Path(alvo)
    try:
        relativo = alvo.parent.relative_to(pasta)
    except ValueError:
        raise ForaDaPasta(f"Recusado: {alvo} não fica dentro de {pasta}.") from None
    caminhos = [Path(pasta)]
    for parte in relativo.parts:
        caminhos.append(caminhos[-1] / parte)
    for atual in caminhos:
        if not os.path.lexists(atual):
            break
        resolvido = atual.resolve()
        if not _dentro(resolvido, raiz):
            raise ForaDaPasta(
                f"Recusado: {atual} é (ou passa por) um link que leva para {resolvido}, fora de {raiz}. "
                f"Escrever {alvo.name} ali mudaria um arquivo de verdade (o espelho ou o cache dos dados). "
                f"Nada foi escrito; apague o link ou escolha outra pasta.")
        if not resolvido.is_dir():
            raise ForaDaPasta(f"Recusado: {atual} existe e não é uma pasta. Nada foi escrito.")


def pesos_sinteticos(size: str = "gpt2", seed: int = 0) -> dict[str, torch.Tensor]:
    """Um tensor float32 para cada peso do `model.safetensors` do tamanho pedido."""
    gerador = torch.Generator().manual_seed(seed)
    pesos = {}
    for nome, formato in gpt2_expected_shapes(size).items():
        if "ln_" in nome and nome.endswith(".weight"):
            pesos[nome] = torch.ones(formato)                  # LayerNorm começa como identidade
        elif nome.endswith(".bias"):
            pesos[nome] = torch.zeros(formato)
        else:
            pesos[nome] = torch.randn(formato, generator=gerador) * 0.02
    return pesos


def escrever(pasta: Path, size: str = "gpt2", seed: int = 0) -> Path:
    """Grava PASTA/openai-community/<size>/model.safetensors (de forma atômica) e devolve o caminho.

    Recusa (ForaDaPasta, sem escrever nada) se alguma pasta do caminho for um link para fora de PASTA. Um link no
    lugar do arquivo é apagado antes; os pesos vão para um `.part` novo na mesma pasta, renomeado no fim.
    """
    from safetensors.torch import save_file

    pasta = Path(pasta)
    destino = caminho_dos_pesos(pasta, size)
    conferir_dentro(pasta, destino)
    destino.parent.mkdir(parents=True, exist_ok=True)
    conferir_dentro(pasta, destino)                              # de novo, agora com as pastas criadas
    if destino.is_symlink():
        destino.unlink()                                         # apaga só o link, nunca o arquivo apontado
    pesos = pesos_sinteticos(size, seed)
    descritor, nome = tempfile.mkstemp(prefix=destino.name + ".", suffix=".part", dir=destino.parent)
    os.close(descritor)                                          # arquivo novo (O_EXCL): não é link de ninguém
    temporario = Path(nome)
    try:
        os.chmod(temporario, 0o644)                              # o mkstemp cria com 0600
        save_file(pesos, str(temporario), metadata={"format": "pt"})
        os.replace(temporario, destino)                          # troca a entrada da pasta, não segue links
    finally:
        temporario.unlink(missing_ok=True)
    return destino


def montar_espelho(origem: Path, pasta: Path, sem: tuple[str, ...] = ()) -> Path:
    """Espelho de `origem` em `pasta` sem nenhum link de pasta: pastas de verdade, links só para arquivos.

    `pasta` não pode existir com conteúdo, nem ficar dentro de `origem` (ou conter `origem`). Os caminhos
    relativos em `sem` ficam de fora. Links dentro de `origem` são seguidos (viram pastas ou arquivos reais do
    espelho); um link em ciclo (para uma pasta acima dele) não é seguido de novo.
    """
    origem_real = Path(origem).resolve()
    pasta = Path(pasta)
    if not origem_real.is_dir():
        raise ForaDaPasta(f"Recusado: o espelho de origem {origem} não é uma pasta.")
    pasta_real = pasta.resolve()
    if _dentro(pasta_real, origem_real) or _dentro(origem_real, pasta_real):
        raise ForaDaPasta(f"Recusado: o espelho temporário {pasta_real} e o de origem {origem_real} se "
                          f"sobrepõem; escrever num seria escrever no outro. Nada foi escrito.")
    if pasta.is_symlink() or (pasta.exists() and any(pasta.iterdir())):
        raise ForaDaPasta(f"Recusado: {pasta} precisa ser uma pasta nova e vazia (não um link).")
    pasta.mkdir(parents=True, exist_ok=True)
    _recriar(origem_real, pasta, Path(), {Path(s) for s in sem}, {origem_real})
    return pasta


def _recriar(fonte: Path, alvo: Path, relativo: Path, pular: set[Path], ancestrais: set[Path]) -> None:
    """Recria em `alvo` as pastas de `fonte` (de verdade) e põe em `alvo` um link para cada arquivo."""
    for item in sorted(fonte.iterdir()):
        caminho = relativo / item.name
        if item.is_dir():                                        # segue links de pasta da origem
            real = item.resolve()
            if real in ancestrais:                               # um link em ciclo: não entra de novo
                continue
            (alvo / item.name).mkdir()
            _recriar(item, alvo / item.name, caminho, pular, ancestrais | {real})
        elif item.is_file() and caminho not in pular:            # links quebrados e afins ficam de fora
            (alvo / item.name).symlink_to(item.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pasta", type=Path, help="a pasta do espelho (LLM_DADOS_ESPELHO)")
    parser.add_argument("--tamanho", default="gpt2", choices=list(GPT2_SIZES))
    parser.add_argument("--semente", type=int, default=0)
    parser.add_argument("--espelho-de", type=Path, metavar="ORIGEM",
                        help="antes, montar PASTA (nova) como espelho de ORIGEM: pastas reais, links só de arquivos")
    args = parser.parse_args(argv)
    try:
        if args.espelho_de is not None:
            montar_espelho(args.espelho_de, args.pasta,
                           sem=(caminho_dos_pesos(Path(), args.tamanho).as_posix(),))
        destino = escrever(args.pasta, args.tamanho, args.semente)
    except ForaDaPasta as recusa:
        print(recusa.mensagem, file=sys.stderr)
        return 1
    print(f"{destino} ({destino.stat().st_size / 1e6:.0f} MB, pesos aleatórios no formato do {args.tamanho})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
