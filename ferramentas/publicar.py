#!/usr/bin/env python3
"""Prepara a publicação de uma versão do curso: muda `VERSAO`, reescreve células e botões e mostra os comandos do git.

O botão "Abrir no Colab" de cada capítulo abre o notebook na etiqueta (tag) `VERSAO` do repositório, e a célula de
configuração clona o código nessa mesma etiqueta; a etiqueta só passa a existir quando quem mantém o curso a cria e
a envia. Esta ferramenta faz a parte local e imprime o resto, sem rodar nada no git que mude o repositório:

    python ferramentas/publicar.py            # a versão do mês (AAAA.MM; AAAA.MM.1, .2… se ela já tem etiqueta)
    python ferramentas/publicar.py 2027.01    # uma versão escolhida

Depois de rodar, confira a mudança (`git diff`), rode os testes e siga os comandos impressos: commit, etiqueta
anotada e um `git push --atomic` que envia o main e a etiqueta juntos (ou os dois, ou nenhum).
"""
from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from configuracao import RAIZ, atualizar, endereco_colab, versao_do_curso  # noqa: E402

FORMATO = re.compile(r"\d{4}\.\d{2}(\.\d+)?")  # ano.mês, com um número a mais para a segunda versão do mês


def etiquetas(raiz: Path) -> set[str]:
    """As etiquetas que o repositório em `raiz` já tem (nenhuma, se ele não for um repositório git)."""
    git = subprocess.run(["git", "-C", str(raiz), "tag", "--list"], capture_output=True, text=True)
    return set(git.stdout.split()) if git.returncode == 0 else set()


def proxima_versao(existentes: set[str], hoje: datetime.date) -> str:
    """A versão do mês de `hoje` (AAAA.MM) ou, se essa já tem etiqueta, a primeira AAAA.MM.N livre."""
    versao = hoje.strftime("%Y.%m")
    n = 0
    while (f"{versao}.{n}" if n else versao) in existentes:
        n += 1
    return f"{versao}.{n}" if n else versao


def comandos_git(versao: str, arquivos: list[str]) -> list[str]:
    """Os comandos que publicam a versão: quem mantém o curso os confere e roda."""
    return [f"git add VERSAO {' '.join(arquivos)}".rstrip(),
            f'git commit -m "Versão {versao} do curso"',
            f'git tag -a {versao} -m "Fazendo um LLM do Zero, versão {versao}"',
            f"git push --atomic origin main {versao}"]


def main(argv: list[str] | None = None, raiz: Path = RAIZ, hoje: datetime.date | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versao", nargs="?", help="a versão nova, no formato AAAA.MM ou AAAA.MM.N")
    args = parser.parse_args(argv)
    existentes = etiquetas(raiz)
    versao = args.versao or proxima_versao(existentes, hoje or datetime.date.today())
    if not FORMATO.fullmatch(versao):
        print(f"Versão inválida: {versao!r}. Use AAAA.MM (ex.: 2027.01) ou AAAA.MM.N.", file=sys.stderr)
        return 1
    if versao in existentes:
        print(f"A etiqueta {versao} já existe: uma versão publicada não muda. Escolha outra "
              f"(ex.: python ferramentas/publicar.py {proxima_versao(existentes, hoje or datetime.date.today())}).",
              file=sys.stderr)
        return 1
    _, problemas = atualizar(raiz, escrever=False, versao=versao)
    if problemas:
        print("Nada foi mudado; corrija antes:\n" + "\n".join(f"- {p}" for p in problemas), file=sys.stderr)
        return 1
    anterior = versao_do_curso(raiz)
    (raiz / "VERSAO").write_text(versao + "\n", encoding="utf-8")
    arquivos, _ = atualizar(raiz, escrever=True)
    print(f"VERSAO: {anterior} → {versao}; {len(arquivos)} arquivo(s) reescrito(s) por configuracao.py.")
    print("\nConfira a mudança (git diff) e rode os testes (bash .ci/run). Depois, para publicar:\n")
    print("\n".join("    " + comando for comando in comandos_git(versao, arquivos)))
    print("\nCom a etiqueta no GitHub, os botões abrem a versão nova, por exemplo:\n    "
          + endereco_colab("00-oficina", versao))
    return 0


if __name__ == "__main__":
    sys.exit(main())
