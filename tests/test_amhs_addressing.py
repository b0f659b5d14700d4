"""AFTN addresses ⇄ AMHS O/R addresses through the register of AMHS management domains
(ICAO Doc 9880 Part II: the XF and CAAS addressing schemes), against published examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli import waypost

from waypost.address import parse_oraddress
from waypost.amhs.addressing import (
    AddressingError,
    Register,
    Scheme,
    check_aftn_address,
    load_register,
)

DATA = Path(__file__).parent / "amhs_data"
REGISTER = load_register((DATA / "register.csv").read_text(), name="register.csv")


@pytest.mark.parametrize(
    ("aftn", "oraddress"),
    [
        # CAAS (the register's O for the location), as Hong Kong publishes it.
        ("VHHHZQZA", "/C=XX/ADMD=ICAO/PRMD=HONGKONG/O=HKGCAD/OU1=VHHH/CN=VHHHZQZA/"),
        # XF, as the AFI AMHS Manual's example.
        ("EGHIZTZX", "/C=XX/ADMD=ICAO/PRMD=EG/O=AFTN/OU1=EGHIZTZX/"),
        # EUR Doc 020's test addressing plan: AFTNLAND-1 in CAAS, AFTNLAND-2 in XF.
        ("BAAAFTBA", "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTBA/"),
        ("BBBBYFYX", "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBYFYX/"),
        # The longest prefix wins: IUTA in CAAS, the rest of IU in XF.
        ("IUTAMHAA", "/C=XX/ADMD=ICAO/PRMD=IUTLAND/O=IUT-REGION/OU1=IUTA/CN=IUTAMHAA/"),
        ("IUTBMHAA", "/C=XX/ADMD=ICAO/PRMD=IUTLAND/O=AFTN/OU1=IUTBMHAA/"),
    ],
)
def test_published_addresses_map_both_ways(aftn: str, oraddress: str) -> None:
    assert str(REGISTER.to_oraddress(aftn)) == oraddress
    assert REGISTER.to_aftn(parse_oraddress(oraddress)) == aftn
    # O/R addresses compare without case (X.411), whatever order they are written in.
    assert REGISTER.to_aftn(parse_oraddress(oraddress.lower())) == aftn


def test_an_unknown_location_and_a_wrong_domain_are_refused() -> None:
    with pytest.raises(AddressingError, match=r"no AMHS management domain .* KJFK"):
        REGISTER.to_oraddress("KJFKZTZX")
    with pytest.raises(AddressingError, match="not an AFTN address"):
        check_aftn_address("EGLL123")
    # An XF address of a domain the register has in CAAS does not stand for the address.
    wrong = parse_oraddress("/C=XX/ADMD=ICAO/PRMD=HONGKONG/O=AFTN/OU1=VHHHZQZA/")
    with pytest.raises(AddressingError, match="whose AMHS address in the register is"):
        REGISTER.to_aftn(wrong)
    with pytest.raises(AddressingError, match="neither an XF nor a CAAS"):
        REGISTER.to_aftn(parse_oraddress("/C=GB/ADMD= /PRMD=Acme/S=Smith/"))


def test_the_register_reads_ldif_as_well() -> None:
    ldif = (
        "version: 1\n\n"
        "dn: amhsPrefix=VH,cn=register\namhsPrefix: VH\namhsScheme: CAAS\n"
        "amhsCountry: XX\namhsAdmd: ICAO\namhsPrmd: HONG\n KONG\namhsOrganization: HKGCAD\n\n"
        "dn: amhsPrefix=EG,cn=register\nprefix: EG\nscheme: xf\ncountry: XX\nadmd: ICAO\n"
        "prmd: EG\n"
    )
    register = load_register(ldif)
    assert len(register) == 2
    assert str(register.to_oraddress("VHHHZQZA")).startswith("/C=XX/ADMD=ICAO/PRMD=HONGKONG/")
    assert register.domain_of("EGLLZPZX") is not None
    assert register.domain_of("EGLLZPZX").scheme is Scheme.XF  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("prefix,scheme,country\nLF,XF,XX\n", "lacks column admd, prmd"),
        (
            "prefix,scheme,country,admd,prmd,organization\nLF1,XF,XX,ICAO,LF,\n",
            "line 2: prefix 'LF1' is not 1 to 4 letters",
        ),
        (
            "prefix,scheme,country,admd,prmd,organization\nLF,XX,XX,ICAO,LF,\n",
            "line 2: scheme 'XX' is not XF or CAAS",
        ),
        (
            "prefix,scheme,country,admd,prmd,organization\nLF,CAAS,XX,ICAO,LF,\n",
            "line 2: a CAAS domain needs its organization",
        ),
        (
            "prefix,scheme,country,admd,prmd,organization\nLF,XF,XXX,ICAO,LF,\n",
            "line 2: its O/R addresses would be invalid",
        ),
        (
            "prefix,scheme,country,admd,prmd,organization\nLF,XF,XX,ICAO,LF,\nLF,XF,XX,ICAO,LF,\n",
            "prefix LF appears twice",
        ),
    ],
)
def test_a_bad_row_is_named(text: str, reason: str) -> None:
    with pytest.raises(AddressingError, match=reason.replace("(", r"\(")):
        load_register(text)


letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4)


@given(
    location=letters, rest=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4)
)
def test_every_address_of_a_registered_domain_maps_back(location: str, rest: str) -> None:
    register = Register(REGISTER)
    aftn = location + rest
    if register.domain_of(aftn) is None:
        return
    assert register.to_aftn(register.to_oraddress(aftn)) == aftn


def test_route_explains_an_aftn_address(tmp_path: Path) -> None:
    config = tmp_path / "waypost.toml"
    config.write_text(
        f'[server]\ndata_dir = "data"\n[amhs]\nregister = "{DATA / "register.csv"}"\n'
        '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=HONGKONG/"\nnext_hop = "x400:HK-MTA"\n'
        '[[x400.peer]]\nname = "HK-MTA"\naddress = "127.0.0.1:102"\n'
    )
    result = waypost("route", "-c", str(config), "VHHHZQZA", "KJFKZTZX", cwd=tmp_path)
    assert result.returncode == 1  # one of the two has no route
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "VHHHZQZA: AFTN address of AMHS management domain HONGKONG "
        "(CAAS addressing, register prefix VH)"
    )
    assert "its AMHS O/R address is /C=XX/ADMD=ICAO/PRMD=HONGKONG/O=HKGCAD/OU1=VHHH/" in lines[1]
    assert any(line.endswith(": x400:HK-MTA") for line in lines)
    assert "KJFKZTZX: NO ROUTE" in lines


def test_config_check_names_a_bad_register_row(tmp_path: Path) -> None:
    register = tmp_path / "register.csv"
    register.write_text("prefix,scheme,country,admd,prmd,organization\nLF,XQ,XX,ICAO,LF,\n")
    config = tmp_path / "waypost.toml"
    config.write_text('[amhs]\nregister = "register.csv"\n')
    result = waypost("config", "check", str(config), cwd=tmp_path)
    assert result.returncode == 78
    assert f"amhs.register: {register}: line 2: scheme 'XQ' is not XF or CAAS" in result.stderr
